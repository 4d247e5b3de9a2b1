"""Typed objects in etcd: create, get, list, update, status update, delete, watch.

Every write is a transaction comparing ``mod_revision`` (optimistic concurrency); an optional
fence (the leader key's create revision) is added to controller writes so that a deposed
leader can no longer write. Works on any kind in the registry.

``metadata.uid`` is always the server's, as in Kubernetes: a create assigns a new one whatever the
client sent (an exported, renamed object becomes an independent one, never a twin sharing the
first one's containers), and a write naming another uid than the stored one is a Conflict. Values
are written as standard JSON only: NaN or Infinity are refused, never stored.

A delete names what becomes of the object's dependents (``Propagation``, as Kubernetes'
``propagationPolicy``): Background deletes it at once and leaves them to the garbage collector;
Foreground and Orphan mark it deleting with the finalizer the garbage collector handles
(``foregroundDeletion``: delete the dependents first; ``orphan``: release them first).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from persys import jsoncodec
from persys.errors import Cause, Conflict, Invalid, NotFound, NotLeader, StoreUnavailable
from persys.resources.model import GC_FINALIZERS, Propagation, Resource, now_iso
from persys.resources.registry import Kind, Registry
from persys.resources.selector import Selector
from persys.store import paging
from persys.store.etcd import KV, Compare, Etcd
from persys.store.keys import kind_prefix, object_key

LEASE_SHARING = 60.0  # seconds during which objects of one TTL share a lease
BATCH = 100  # objects one create_many may write (etcd allows 128 operations, and compares, per transaction)
NAME_SCAN = 10_000  # keys read per etcd request while a list looks for names holding a text


@dataclass(frozen=True)
class WatchEvent:
    """ADDED, MODIFIED or DELETED with the object (for DELETED: its last state)."""

    type: str
    object: Resource
    revision: int


@dataclass(frozen=True)
class Fence:
    """Holds while ``key`` (a leader key) still has ``create_revision``: the writer is still leader."""

    key: str
    create_revision: int

    def compare(self) -> Compare:
        return Compare(self.key, "create", self.create_revision)


class ObjectStore:
    """Objects of registered kinds, stored as JSON under the DESIGN.md key layout."""

    def __init__(self, etcd: Etcd, registry: Registry) -> None:
        self.etcd = etcd
        self.registry = registry
        self._leases: dict[int, tuple[int, float]] = {}  # ttl → (shared lease id, when granted)

    def _decode(self, kind: Kind, kv: KV, revision: int | None = None) -> Resource:
        obj = kind.from_wire(jsoncodec.loads(kv.value), copy=False)  # the decoded JSON is nobody else's
        obj.metadata.resourceVersion = str(revision if revision is not None else kv.mod_revision)
        return obj

    @staticmethod
    def _encode(kind: Kind, obj: Resource) -> bytes:
        data = kind.to_wire(obj)
        data["metadata"].pop("resourceVersion", None)
        if kind.spec_field != "spec":
            data["status"] = obj.status
        try:
            return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
        except ValueError as e:  # a NaN or Infinity that validation let through (a controller's write)
            raise Invalid(f"{kind.singular} {obj.metadata.name!r} cannot be stored: {e}") from e

    async def get(self, kind_name: str, namespace: str, name: str) -> Resource:
        kind = self.registry.get(kind_name)
        kv = await self.etcd.get(object_key(kind, namespace, name))
        if kv is None:
            where = f" in namespace {namespace!r}" if kind.namespaced else ""
            raise NotFound(f'{kind.singular} "{name}" not found{where}')
        return self._decode(kind, kv)

    async def list_wire(self, kind_name: str, namespace: str | None = None, selector: Selector | None = None, *,
                        limit: int = 0, token: str = "",
                        name_contains: str = "") -> tuple[list[dict[str, Any]], int, str]:
        """Like ``list``, as wire dicts (``Kind.to_wire``'s shape) built straight from etcd's JSON.

        The API's list path: no Resource per object, so that 10,000 objects list in well under a second.
        With ``limit`` a page of at most that many keys (a selector may keep fewer), and the token of the
        next page ("" after the last); ``token`` continues a list from the revision its first page read
        (``persys.store.paging``), Gone once that revision is compacted. ``name_contains`` keeps the objects
        whose name holds it (any case), found by scanning keys without values: only matches are read.
        """
        kind = self.registry.get(kind_name)
        prefix = kind_prefix(kind, namespace)
        following = ""
        if name_contains:
            kvs, revision, following = await self._named(prefix, name_contains.lower(), limit, token)
        elif limit or token:
            start, at = paging.decode(token, prefix) if token else ("", 0)
            kvs, revision, more = await self.etcd.page(prefix, start=start, limit=limit or paging.DEFAULT_PAGE,
                                                       revision=at)
            following = paging.encode(kvs[-1].key, revision) if more and kvs else ""
        else:
            kvs, revision = await self.etcd.range(prefix)
        items: list[dict[str, Any]] = []
        for kv in kvs:
            data = jsoncodec.loads(kv.value)
            meta = data.setdefault("metadata", {})
            if selector and not selector.matches(meta.get("labels") or {}):
                continue
            meta["resourceVersion"] = str(kv.mod_revision)
            if kind.spec_field != "spec":
                data.pop("status", None)
            items.append(data)
        return items, revision, following

    async def _named(self, prefix: str, part: str, limit: int, token: str) -> tuple[list[KV], int, str]:
        """The objects under ``prefix`` whose name holds ``part`` (lower case): up to ``limit`` of them (0: all)
        from where ``token`` left off, the revision read at, and the next page's token ("" after the last)."""
        start, revision = paging.decode(token, prefix) if token else ("", 0)
        found: list[str] = []
        while True:
            keys, revision, more = await self.etcd.page(prefix, start=start, limit=NAME_SCAN, revision=revision,
                                                        keys_only=True)
            for kv in keys:
                if part not in kv.key.rsplit("/", 1)[-1].lower():
                    continue
                if limit and len(found) == limit:  # one more match: the next page starts after the last one sent
                    return await self.etcd.get_at(found, revision), revision, paging.encode(found[-1], revision)
                found.append(kv.key)
            if not more or not keys:
                return await self.etcd.get_at(found, revision), revision, ""
            start = keys[-1].key + "\0"

    async def list(self, kind_name: str, namespace: str | None = None,
                   selector: Selector | None = None) -> tuple[list[Resource], int]:
        """Objects (in ``namespace``, or all) matching ``selector``, with the revision of the read."""
        kind = self.registry.get(kind_name)
        kvs, revision = await self.etcd.range(kind_prefix(kind, namespace))
        items = [self._decode(kind, kv) for kv in kvs]
        if selector:
            items = [o for o in items if selector.matches(o.metadata.labels)]
        return items, revision

    async def create(self, obj: Resource, *, fence: Fence | None = None) -> Resource:
        kind = self.registry.get(obj.kind)
        obj = as_created(obj)
        meta = obj.metadata
        key = object_key(kind, meta.namespace, meta.name)
        ok, revision = await self._write(key, kind, obj, Compare(key, "create", 0), fence)
        if not ok:
            raise Conflict(f'{kind.singular} "{meta.name}" already exists')
        meta.resourceVersion = str(revision)
        return obj

    async def create_or_get(self, obj: Resource) -> tuple[Resource, bool]:
        """Create ``obj``, or read the object of its name when there is one, in one etcd round trip:
        (the object created, True) or (the object found, False). Not for kinds kept on a lease."""
        kind = self.registry.get(obj.kind)
        if kind.lease_ttl:
            raise ValueError(f"{kind.kind} objects live on a lease: create them with create()")
        obj = as_created(obj)
        meta = obj.metadata
        key = object_key(kind, meta.namespace, meta.name)
        revision, found = await self.etcd.txn_put_or_get(key, self._encode(kind, obj), [Compare(key, "create", 0)])
        if revision:
            meta.resourceVersion = str(revision)
            return obj, True
        if found is None:  # the compare and the read are one revision: it cannot be absent, but never say so
            raise Conflict(f'{kind.singular} "{meta.name}" changed while it was created; retry')
        return self._decode(kind, found), False

    async def _shared_lease(self, ttl: int, *, fresh: bool = False) -> int:
        """One lease for every object of this TTL written within ``LEASE_SHARING`` seconds (Kubernetes
        does the same for Events): granted for ``ttl + LEASE_SHARING``, so each lives at least ``ttl``."""
        now = time.monotonic()
        held = self._leases.get(ttl)
        if held is None or fresh or now - held[1] >= LEASE_SHARING:
            held = (await self.etcd.grant_lease(ttl + int(LEASE_SHARING)), now)
            self._leases[ttl] = held
        return held[0]

    async def create_many(self, objs: Sequence[Resource], *, fence: Fence | None = None) -> bool:
        """Create the objects ``objs`` (of one kind, distinct names, at most ``BATCH``) in one transaction, so one
        revision: all of them, or none when one exists already (False: create them one by one instead)."""
        if not objs:
            return True
        kind = self.registry.get(objs[0].kind)
        created = [as_created(obj) for obj in objs]
        keys = [object_key(kind, obj.metadata.namespace, obj.metadata.name) for obj in created]
        ok, _ = await self._put([(key, self._encode(kind, obj)) for key, obj in zip(keys, created, strict=True)],
                                kind, [Compare(key, "create", 0) for key in keys], fence)
        return ok

    async def _write(self, key: str, kind: Kind, obj: Resource, guard: Compare,
                     fence: Fence | None) -> tuple[bool, int]:
        return await self._put([(key, self._encode(kind, obj))], kind, [guard], fence)

    async def _put(self, items: Sequence[tuple[str, bytes]], kind: Kind, guards: Sequence[Compare],
                   fence: Fence | None) -> tuple[bool, int]:
        compares = [*guards, *([fence.compare()] if fence else [])]
        if kind.lease_ttl:  # every write (a bump too) keeps the object on a live lease
            try:
                ok, revision = await self.etcd.txn_puts(items, compares, lease=await self._shared_lease(
                    kind.lease_ttl))
            except StoreUnavailable as e:
                if "lease not found" not in e.message:
                    raise
                ok, revision = await self.etcd.txn_puts(items, compares, lease=await self._shared_lease(
                    kind.lease_ttl, fresh=True))  # revoked or expired under us
        else:
            ok, revision = await self.etcd.txn_puts(items, compares)
        if not ok and fence is not None:
            leader = await self.etcd.get(fence.key)
            if leader is None or leader.create_revision != fence.create_revision:
                raise NotLeader(f"lost leadership ({fence.key}); write refused")
        return ok, revision

    async def replace(self, obj: Resource, *, fence: Fence | None = None) -> Resource:
        """Write metadata and spec of ``obj`` (CAS on its resourceVersion); status is kept as stored.

        ``generation`` bumps only when spec changes. When nothing changes nothing is written
        and the stored object is returned as it is.
        """
        kind = self.registry.get(obj.kind)
        current = await self.get(kind.kind, obj.metadata.namespace, obj.metadata.name)
        expected = obj.resource_version or current.resource_version
        if expected != current.resource_version:
            raise Conflict(f'{kind.singular} "{obj.metadata.name}" was modified (resourceVersion '
                           f"{obj.metadata.resourceVersion} is stale, now {current.metadata.resourceVersion}); "
                           "get it again and retry")
        updated = replaced(kind, current, obj)
        if updated.to_dict(copy=False) == current.to_dict(copy=False):
            return current
        return await self._commit(kind, current, updated, fence)

    async def update_status(self, kind_name: str, namespace: str, name: str, status: dict[str, Any], *,
                            resource_version: str = "", fence: Fence | None = None,
                            attempts: int = 8) -> Resource:
        """Replace status (CAS on ``resource_version`` when given); generation never moves.

        Without ``resource_version`` the caller asked for no CAS, so a write that loses the race
        between read and write to another writer (a spec change, another status) is read again and
        retried, as ``modify`` does, instead of failing with a Conflict the caller never asked for.
        """
        kind = self.registry.get(kind_name)
        for _ in range(attempts):
            current = await self.get(kind.kind, namespace, name)
            if resource_version and int(resource_version) != current.resource_version:
                raise Conflict(f'{kind.singular} "{name}" was modified; resourceVersion {resource_version} is stale')
            if status == current.status:
                return current
            updated = current.copy()
            updated.status = status
            try:
                return await self._commit(kind, current, updated, fence)
            except Conflict:
                if resource_version:
                    raise
        raise Conflict(f'{kind.singular} "{name}" kept changing; status write gave up after {attempts} attempts')

    async def modify(self, kind_name: str, namespace: str, name: str, change: Callable[[Resource], None], *,
                     fence: Fence | None = None, attempts: int = 8, base: Resource | None = None) -> Resource:
        """Read, apply ``change`` in place, write with CAS; retried on conflict (a controller's write).

        ``base``: the object as the caller last saw it (an informer's cached copy, never mutated);
        the first attempt writes against it without reading etcd, and a conflict reads afresh.
        """
        kind = self.registry.get(kind_name)
        for attempt in range(attempts):
            current = base if attempt == 0 and base is not None else await self.get(kind.kind, namespace, name)
            updated = current.copy()
            change(updated)
            if updated.spec != current.spec:
                updated.metadata.generation = current.metadata.generation + 1
            if updated.to_dict(copy=False) == current.to_dict(copy=False):
                if current is base:
                    continue  # nothing to change on the caller's copy; etcd's may differ: read it
                return current
            try:
                return await self._commit(kind, current, updated, fence)
            except Conflict:
                continue
        raise Conflict(f'{kind.singular} "{name}" kept changing; gave up after {attempts} attempts')

    async def _commit(self, kind: Kind, current: Resource, updated: Resource, fence: Fence | None) -> Resource:
        key = object_key(kind, current.metadata.namespace, current.metadata.name)
        if updated.metadata.deletionTimestamp and not updated.metadata.finalizers:
            ok, revision = await self.etcd.txn_delete(key, [Compare(key, "mod", current.resource_version)]
                                                      + ([fence.compare()] if fence else []))
        else:
            ok, revision = await self._write(key, kind, updated, Compare(key, "mod", current.resource_version), fence)
        if not ok:
            raise Conflict(f'{kind.singular} "{current.metadata.name}" was modified concurrently; retry')
        updated.metadata.resourceVersion = str(revision)
        return updated

    async def delete(self, kind_name: str, namespace: str, name: str, *, resource_version: str = "",
                     propagation: Propagation | None = None, fence: Fence | None = None) -> Resource:
        """Delete, or with finalizers mark ``deletionTimestamp`` (the key goes with the last finalizer).

        ``propagation`` sets the garbage collector's finalizer; None (no policy asked for) keeps
        whatever an earlier delete set, as Kubernetes does.
        """
        kind = self.registry.get(kind_name)
        current = await self.get(kind.kind, namespace, name)
        if resource_version and int(resource_version) != current.resource_version:
            raise Conflict(f'{kind.singular} "{name}" was modified; resourceVersion {resource_version} is stale')
        updated = current.copy()
        if propagation is not None:
            updated.metadata.finalizers = with_propagation(updated.metadata.finalizers, propagation)
        if not updated.metadata.deletionTimestamp:
            updated.metadata.deletionTimestamp = now_iso()
        elif updated.metadata.finalizers and updated.metadata.finalizers == current.metadata.finalizers:
            return current  # already being deleted, waiting for its finalizers
        return await self._commit(kind, current, updated, fence)

    async def watch(self, kind_name: str, namespace: str | None = None, *, revision: int,
                    selector: Selector | None = None) -> AsyncIterator[WatchEvent]:
        """Events after ``revision`` (exclusive), in order. Raises Gone when it was compacted."""
        kind = self.registry.get(kind_name)
        async for raw in self.etcd.watch(kind_prefix(kind, namespace), revision + 1):
            if not raw.value:
                continue
            obj = kind.from_wire(jsoncodec.loads(raw.value))
            obj.metadata.resourceVersion = str(raw.revision)
            if selector and not selector.matches(obj.metadata.labels):
                continue
            if raw.type == "DELETE":
                kind_of_event = "DELETED"
            else:
                kind_of_event = "ADDED" if raw.version == 1 else "MODIFIED"
            yield WatchEvent(kind_of_event, obj, raw.revision)


def as_created(obj: Resource) -> Resource:
    """What ``create`` stores for ``obj`` (the API's dry run shows the same): a copy with a new uid."""
    obj = obj.copy()
    obj.metadata.uid = str(uuid.uuid4())
    obj.metadata.creationTimestamp = now_iso()
    obj.metadata.generation = 1
    obj.metadata.deletionTimestamp = None
    return obj


def check_uid(current: Resource, obj: Resource) -> None:
    """Conflict when ``obj`` names another uid than ``current``: it describes another object."""
    given, stored = obj.metadata.uid, current.metadata.uid
    if given and given != stored:
        raise Conflict(f'{current.kind.lower()} "{current.metadata.name}": metadata.uid {given} is not the stored '
                       f"object's uid {stored} (uids are assigned by the server: remove metadata.uid to update this "
                       "object, or give it another name to create a new one)",
                       causes=[Cause("metadata.uid", f"does not match the stored object's uid {stored}")])


def replaced(kind: Kind, current: Resource, obj: Resource) -> Resource:
    """What ``replace`` stores for ``obj`` over ``current`` (the API's dry run shows the same)."""
    check_uid(current, obj)
    updated = current.copy()
    updated.spec = dict(obj.spec)
    for name in kind.server_fields:  # a re-applied manifest does not unbind what the scheduler bound
        if not updated.spec.get(name) and current.spec.get(name):
            updated.spec[name] = current.spec[name]
    updated.metadata.labels = dict(obj.metadata.labels)
    updated.metadata.annotations = dict(obj.metadata.annotations)
    updated.metadata.ownerReferences = list(obj.metadata.ownerReferences)  # the write says who owns it, as labels
    # controllers' finalizers (persys.dev/…) guard deletion: until it starts, a write that does not
    # name them (a re-applied manifest) keeps them; once deleting, they can be removed as usual
    kept = [] if current.metadata.deletionTimestamp else \
        [f for f in current.metadata.finalizers if f.startswith("persys.dev/") and f not in obj.metadata.finalizers]
    updated.metadata.finalizers = list(obj.metadata.finalizers) + kept
    if updated.spec != current.spec:
        updated.metadata.generation = current.metadata.generation + 1
    return updated


def with_propagation(finalizers: list[str], propagation: Propagation) -> list[str]:
    """``finalizers`` with the garbage collector's one for ``propagation`` (and without the other's)."""
    kept = [f for f in finalizers if f not in GC_FINALIZERS.values()]
    wanted = GC_FINALIZERS.get(propagation)
    return kept + [wanted] if wanted else kept


def leader_fence(kv: KV) -> Fence:
    return Fence(kv.key, kv.create_revision)


__all__: Sequence[str] = ["Fence", "ObjectStore", "WatchEvent", "as_created", "check_uid", "leader_fence", "replaced",
                          "with_propagation"]
