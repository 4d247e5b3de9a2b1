"""The garbage collector: deletes the dependents of owners that are gone, for every kind in the registry.

It watches every kind and indexes each by the uids its ``metadata.ownerReferences`` name, so an
owner's dependents are one lookup whatever their kind. Its keys are the objects of any kind (an
``ObjectKey`` carries its kind), and one reconcile looks at an object in both of its roles: as an
owner being deleted with a collector finalizer (``ownership.settle``: release the dependents of an
``orphan`` deletion, delete those of a ``foregroundDeletion`` and wait for the blocking ones), and as
a dependent (``ownership.judge``: delete it when all its owners are gone, drop the references to
the gone ones while another owner remains). The rules are pure functions in ``ownership.py``; this
module reads the caches, resolves owners and writes, every write fenced by the leader lease.

Nothing irrevocable is done on the word of a cache alone, as the informers of different kinds lag
differently: an owner is declared gone only after etcd confirms it (it may have been created a
moment ago), and an owner's finalizer is released only after etcd's list of its dependents agrees
(one created a moment ago would be deleted instead of orphaned, or outlive a foreground owner). An
owner recreated under its name has another uid and is gone for the dependents of the first one.
A dependent is deleted only in the version that was judged (a resourceVersion precondition), so one
recreated under its name, or released by an orphaning owner a moment ago, stays.

Handlers enqueue only what a change concerns (an object whose references changed, an owner being
deleted, the dependents of an object that went, the owners of one that goes), so the status writes
that make most of the traffic cost a filter, not a reconcile. The kinds are those registered when
the manager is built, less those stored on an etcd lease (Events): they expire by themselves, and
caching the busiest kind of all would cost every controller process its memory for nothing.
Custom kinds come and go with their ResourceDefinitions: a definition's key is reconciled like any
object's, and following it registers its kind in this process's registry and starts an informer
for it (``Manager.follow``); once the definition is gone (the API deleted its objects first), the
informer stops. Each term starts from the built-in kinds and follows the definitions again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from persys.controllers.ownership import (
    DELETE,
    UNLINK,
    OwnerState,
    judge,
    owner_key,
    owner_state,
    settle,
    without_owners,
)
from persys.errors import Conflict, NotFound
from persys.resources.definitions import RESOURCE_DEFINITION, kind_of
from persys.resources.model import GC_FINALIZERS, ObjectKey, OwnerReference, Resource
from persys.resources.registry import Kind
from persys.runtime.controller import Controller, Result, Watch
from persys.runtime.informer import DELETED
from persys.runtime.manager import Manager

OWNER_UID = "gc/owner-uid"
RD = RESOURCE_DEFINITION.kind
RECHECK = 0.5  # seconds: a dependent that changed while judged is judged again from a fresher cache


def owner_uids(obj: Resource) -> list[str]:
    """Index function: the uids of the owners ``obj`` names."""
    return [ref.uid for ref in obj.metadata.ownerReferences]


def settling(obj: Resource) -> bool:
    """Being deleted with a finalizer the collector handles (foreground or orphan)."""
    return bool(obj.metadata.deletionTimestamp) and any(f in GC_FINALIZERS.values() for f in obj.metadata.finalizers)


class GarbageCollector(Controller):
    """Deletes dependents whose owners are gone; carries out foreground and orphan deletions."""

    name = "gc"
    workers = 2
    resync_period = 300.0

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []
        self._builtin: list[str] = []
        self._custom: dict[str, str] = {}  # definition name -> the kind followed for it

    def bind(self, manager: Manager) -> None:
        """Watch every kind registered now. ``Controller`` wants a home kind: any serves, as the keys carry
        their own, and every kind (that one too) is wired alike through ``watches()``."""
        self._builtin = [kind.kind for kind in manager.store.registry.all() if kind.lease_ttl is None]
        self.kinds = list(self._builtin)
        self.kind = self.kinds[0]
        super().bind(manager)

    def setup(self) -> None:
        """A new term follows the definitions anew (one may have gone while another process led)."""
        for definition in list(self._custom):
            self._unfollow(definition, gone=False)

    def watches(self) -> Sequence[Watch]:
        return [Watch(kind, self._keys, indexes={OWNER_UID: owner_uids}) for kind in self.kinds]

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        """Nothing: the home kind's changes arrive through ``watches()`` like every other kind's."""

    def on_resync(self) -> None:
        for kind in self.kinds:
            for obj in self.informer(kind).objects():
                if obj.metadata.ownerReferences or settling(obj):
                    self.queue.add(obj.key)

    # -- which keys a change concerns --

    def _keys(self, event_type: str, obj: Resource, old: Resource | None) -> Iterator[ObjectKey]:
        if obj.kind == RD:
            yield obj.key  # a kind to follow or to stop following
        refs_changed = old is None or old.metadata.ownerReferences != obj.metadata.ownerReferences
        if event_type != DELETED and ((obj.metadata.ownerReferences and refs_changed) or settling(obj)):
            yield obj.key
        if event_type == DELETED:
            yield from (d.key for d in self.dependents(obj.metadata.uid))
        elif old is not None and old.metadata.uid != obj.metadata.uid:  # recreated (seen by a relist)
            yield from (d.key for d in self.dependents(old.metadata.uid))
        starts_deleting = bool(obj.metadata.deletionTimestamp) and not (old and old.metadata.deletionTimestamp)
        if event_type == DELETED or refs_changed or starts_deleting:  # an owner may be waiting for this one
            refs = {*obj.metadata.ownerReferences, *(old.metadata.ownerReferences if old else ())}
            yield from (key for ref in refs if (key := self._owner_key(ref, obj)) is not None)

    def dependents(self, uid: str) -> list[Resource]:
        """The cached objects of every kind that name ``uid`` as an owner."""
        return [d for kind in self.kinds for d in self.informer(kind).by_index(OWNER_UID, uid)]

    def _kind(self, name: str) -> Kind | None:
        try:
            return self.store.registry.get(name)
        except NotFound:
            return None

    def _owner_key(self, ref: OwnerReference, dependent: Resource) -> ObjectKey | None:
        return owner_key(ref, dependent, self._kind(ref.kind))

    # -- reconcile: the object as an owner being deleted, then as a dependent --

    async def reconcile(self, key: ObjectKey) -> Result:
        if key.kind == RD:
            await self._follow_definition(key)
        if key.kind not in self.kinds:
            return Result()
        obj = self.informer(key.kind).get(key)
        if obj is None:
            return Result()
        if settling(obj):
            await self._settle(obj)
        if obj.metadata.ownerReferences:
            return await self._collect(obj)
        return Result()

    # -- custom kinds --

    async def _follow_definition(self, key: ObjectKey) -> None:
        definition = self.informer(RD).get(key)
        name = key.name
        if definition is None:
            self._unfollow(name, gone=True)
            return
        if name in self._custom:
            return
        kind = kind_of(definition)
        try:
            self.store.registry.register(kind)
        except ValueError as e:  # the API refuses clashes; two definitions admitted at one moment may still
            self.log.warning("definition's kind not collected: its names clash", definition=name, error=str(e))
            return
        informer = await self.manager.follow(kind.kind)
        informer.add_index(OWNER_UID, owner_uids)
        informer.add_handler(self._mapper(self._keys), owner=self)
        self._custom[name] = kind.kind
        self.kinds.append(kind.kind)
        self.log.info("collecting kind", kind=kind.kind, group=kind.group)
        for other in self.kinds:  # dependents judged while their owners' kind was unknown: judge them again
            for obj in self.informer(other).objects():
                if any(ref.kind == kind.kind for ref in obj.metadata.ownerReferences):
                    self.queue.add(obj.key)

    def _unfollow(self, definition: str, *, gone: bool) -> None:
        """Stop watching a definition's kind; forget the kind too when the definition is ``gone``."""
        kind = self._custom.pop(definition, None)
        if kind is None:
            return
        self.kinds.remove(kind)
        self.manager.unfollow(kind)
        if gone:
            self.store.registry.unregister(kind)
        self.log.info("no longer collecting kind", kind=kind)

    async def _settle(self, owner: Resource) -> None:
        step = settle(owner, self.dependents(owner.metadata.uid))
        if step is not None and step.release is not None:  # irrevocable: not on the word of caches that may lag
            step = settle(owner, await self._listed_dependents(owner))
        if step is None:
            return
        for key in step.enqueue:
            self.queue.add(key)
        for key in step.unlink:
            await self._modify(key, lambda d: without_owners(d, frozenset({owner.metadata.uid})))
        if step.release is not None:
            released = step.release
            self.log.info("owner settled", owner=str(owner.key), finalizer=released, reason=step.reason)
            await self._modify(owner.key, lambda o: _release(o, owner.metadata.uid, released), base=owner)
        else:
            self.log.debug("owner waiting", owner=str(owner.key), reason=step.reason)

    async def _listed_dependents(self, owner: Resource) -> list[Resource]:
        """``owner``'s dependents as etcd holds them now, one created a moment ago included.

        A namespaced owner's dependents are in its namespace; a cluster-scoped one's may be anywhere.
        """
        namespace = owner.metadata.namespace or None
        found: list[Resource] = []
        for name in self.kinds:
            kind = self.store.registry.get(name)
            if namespace and not kind.namespaced:
                continue  # a cluster-scoped object cannot name a namespaced owner
            items, _ = await self.store.list(name, namespace if kind.namespaced else None)
            found += [item for item in items if owner.metadata.uid in owner_uids(item)]
        return found

    async def _collect(self, dependent: Resource) -> Result:
        owners = {ref.uid: await self._state(ref, dependent) for ref in dependent.metadata.ownerReferences}
        verdict = judge(dependent, owners, has_dependents=bool(self.dependents(dependent.metadata.uid)))
        meta = dependent.metadata
        if verdict.action == DELETE:
            self.log.info("deleting dependent", dependent=str(dependent.key), reason=verdict.reason,
                          propagation=verdict.propagation)
            try:  # only the version judged: one released (orphaned) meanwhile, or recreated, stays
                await self.store.delete(dependent.kind, meta.namespace, meta.name, propagation=verdict.propagation,
                                        resource_version=meta.resourceVersion, fence=self.fence)
            except NotFound:
                pass
            except Conflict:
                self.log.debug("dependent changed; judging it again", dependent=str(dependent.key))
                return Result(requeue_after=RECHECK)
        elif verdict.action == UNLINK:
            self.log.info("releasing dependent", dependent=str(dependent.key), reason=verdict.reason)
            await self._modify(dependent.key, lambda d: without_owners(d, verdict.unlink), base=dependent)
        return Result()

    async def _state(self, ref: OwnerReference, dependent: Resource) -> OwnerState:
        """The owner's state from the cache, confirmed by etcd unless present (the cache may lag)."""
        key = self._owner_key(ref, dependent)
        if key is None:
            return OwnerState.UNRESOLVED
        cached = self.informer(key.kind).get(key) if key.kind in self.kinds else None
        state = owner_state(ref, cached)
        if state is not OwnerState.PRESENT:  # a state that leads to a write is confirmed by etcd
            try:
                live: Resource | None = await self.store.get(key.kind, key.namespace, key.name)
            except NotFound:
                live = None
            state = owner_state(ref, live)
        return state

    async def _modify(self, key: ObjectKey, change: Callable[[Resource], None], base: Resource | None = None) -> None:
        try:
            await self.store.modify(key.kind, key.namespace, key.name, change, fence=self.fence, base=base)
        except NotFound:
            pass  # gone already: nothing left to change


def _release(obj: Resource, uid: str, finalizer: str) -> None:
    """Remove ``finalizer`` from the owner ``uid`` (not from an object recreated under its name)."""
    if obj.metadata.uid == uid:
        obj.metadata.finalizers = [f for f in obj.metadata.finalizers if f != finalizer]
