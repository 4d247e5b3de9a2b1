"""Serving custom kinds: each API server follows the stored ResourceDefinitions and serves their kinds.

An informer over ResourceDefinitions (through ``persys.store``, like the controllers' caches)
registers each definition's kind in this server's registry as soon as it is stored, and
unregisters it once the definition is gone, so every server of a cluster serves the same kinds
without a restart. The server that stores a definition also registers it before answering, so
a client can use the kind at once. A definition whose names clash (two servers admitted two at
the same moment) is not served; the first one registered keeps its names, and the clash is logged.

Writes of definitions are admitted here: a kind, plural, singular or short name another kind
answers to (a built-in kind, or another stored definition) is refused, naming the field; scope
and kind cannot change; and every definition carries ``DEFINITION_FINALIZER``. Deleting a
definition therefore only marks it: the kind stays served (objects being deleted can still drop
their finalizers) but takes no new objects, every server's cleanup loop deletes its objects,
and once none is left the finalizer goes, and with the definition the kind. As Kubernetes does
for CRDs, the API server itself does this, so no other component is needed for custom kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from persys.api.context import ApiContext
from persys.errors import Cause, Conflict, Invalid, NotFound, PersysError
from persys.observability.logging import get_logger
from persys.resources import Kind, Resource
from persys.resources.definitions import DEFINITION_FINALIZER, RESOURCE_DEFINITION, CustomKind, kind_of
from persys.resources.kinds import default_registry
from persys.runtime.backoff import Backoff
from persys.runtime.informer import DELETED, Informer
from persys.runtime.supervisor import Named, Service

log = get_logger("api.definitions")

RD = RESOURCE_DEFINITION.kind


class Definitions:
    """The custom kinds one API server serves, kept in step with the stored ResourceDefinitions."""

    def __init__(self, ctx: ApiContext, *, retry: tuple[float, float] = (0.2, 5.0)) -> None:
        self.ctx = ctx
        self.retry = retry
        self.informer = Informer(ctx.store, RD)
        self.informer.add_handler(self._on_event, owner=self)
        self._served: dict[str, str] = {}  # definition name -> the kind it serves
        self._terminating: set[str] = set()  # definitions being deleted
        self._wake = asyncio.Event()
        ctx.admission.append(self.admit)
        ctx.written.append(self._on_written)

    def services(self) -> list[Service]:
        return [Named("api/definitions", self.informer.run), Named("api/definition-cleanup", self.cleanup)]

    async def prime(self, timeout: float) -> None:
        """Serve the stored definitions before the server listens (best effort: the informer catches up)."""
        try:
            async with asyncio.timeout(timeout):
                definitions, _ = await self.ctx.store.list(RD)
        except (PersysError, TimeoutError) as e:
            log.warning("definitions not listed before serving; the informer will", error=str(e))
            return
        for definition in definitions:
            self._serve(definition)

    # -- serving --

    def _on_event(self, event_type: str, definition: Resource, old: Resource | None) -> None:
        if event_type == DELETED:
            self._unserve(definition.metadata.name)
        else:
            self._serve(definition)

    def _on_written(self, obj: Resource) -> None:
        if obj.kind == RD:
            self._serve(obj)

    def _serve(self, definition: Resource) -> None:
        name = definition.metadata.name
        kind = kind_of(definition)
        if definition.metadata.deletionTimestamp:
            self._terminating.add(name)
            self._wake.set()
        try:
            self.ctx.registry.register(kind)
        except ValueError as e:
            log.warning("definition not served: its names clash", definition=name, error=str(e))
            return
        if name not in self._served:
            log.info("serving kind", kind=kind.kind, group=kind.group, versions=list(kind.versions))
        self._served[name] = kind.kind

    def _unserve(self, name: str) -> None:
        self._terminating.discard(name)
        kind_name = self._served.pop(name, None)
        if kind_name is not None:
            self.ctx.registry.unregister(kind_name)
            log.info("kind no longer served", kind=kind_name, definition=name)

    # -- admission --

    async def admit(self, kind: Kind, obj: Resource, current: Resource | None) -> None:
        """Refuse clashing or changed names of a definition; refuse new objects of a kind being deleted."""
        if kind.kind == RD:
            await self._admit_definition(obj, current)
        elif current is None and isinstance(kind, CustomKind) and kind.definition in self._terminating:
            raise Conflict(f"{kind.plural}.{kind.group} is being deleted (its ResourceDefinition "
                           f"{kind.definition} is): no new {kind.plural} can be created")

    async def _admit_definition(self, definition: Resource, current: Resource | None) -> None:
        candidate = kind_of(definition)
        causes = _immutable(definition, current) + await self._clashes(candidate, definition.metadata.name)
        if causes:
            raise Invalid(f"ResourceDefinition {definition.metadata.name!r} is invalid: "
                          + "; ".join(f"{c.field}: {c.message}" for c in causes), causes=causes)
        meta = definition.metadata
        deleting = meta.deletionTimestamp or (current is not None and current.metadata.deletionTimestamp)
        if not deleting and DEFINITION_FINALIZER not in meta.finalizers:
            meta.finalizers.append(DEFINITION_FINALIZER)

    async def _clashes(self, candidate: Kind, name: str) -> list[Cause]:
        """A cause for each name of ``candidate`` a built-in kind or another stored definition's kind has."""
        others = default_registry()
        stored, _ = await self.ctx.store.list(RD)
        for definition in stored:
            if definition.metadata.name != name:
                with contextlib.suppress(ValueError):  # a clash among the stored ones is not this write's
                    others.register(kind_of(definition))
        return [Cause(_field_of(taken, candidate), f"{taken!r} is taken by kind {other.kind} ({other.group})")
                for taken, other in others.clashes(candidate)]

    # -- deleting --

    async def cleanup(self) -> None:
        """Delete the objects of definitions being deleted, then their finalizer; forever."""
        retry = Backoff(*self.retry)
        while True:
            self._wake.clear()
            finished = True
            for name in sorted(self._terminating):
                try:
                    finished = await self._clean(name) and finished
                except PersysError as e:
                    log.warning("definition cleanup failed; retrying", definition=name, error=e.message)
                    finished = False
            if finished:
                retry.reset()
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):  # not wait_for: in 3.11 it can swallow a cancel
                    async with asyncio.timeout(retry.next()):
                        await self._wake.wait()

    async def _clean(self, name: str) -> bool:
        """One pass over a definition being deleted; True once its objects are gone and its finalizer too."""
        definition = self.informer.get_by("", name)
        if definition is None or not definition.metadata.deletionTimestamp:
            return True
        store, kind_name = self.ctx.store, self._served.get(name)
        if kind_name is not None:
            objects, _ = await store.list(kind_name)
            for obj in objects:
                if not obj.metadata.deletionTimestamp:
                    with contextlib.suppress(NotFound):
                        await store.delete(kind_name, obj.metadata.namespace, obj.metadata.name)
            if objects:
                return False  # done when a pass finds none left (finalizers of objects may hold some a while)

        def drop(obj: Resource) -> None:
            obj.metadata.finalizers = [f for f in obj.metadata.finalizers if f != DEFINITION_FINALIZER]

        with contextlib.suppress(NotFound):
            await store.modify(RD, "", name, drop)
        return True


def _immutable(definition: Resource, current: Resource | None) -> list[Cause]:
    if current is None:
        return []
    causes = []
    for where, old, new in (("spec.scope", current.spec["scope"], definition.spec["scope"]),
                            ("spec.names.kind", current.spec["names"]["kind"], definition.spec["names"]["kind"])):
        if old != new:
            causes.append(Cause(where, f"cannot change from {old!r} (delete the definition to define anew)"))
    return causes


def _field_of(name: str, kind: Kind) -> str:
    """The ``spec.names`` field of a definition that gave its kind ``name``."""
    fields: list[tuple[str, Any]] = [
        ("spec.names.kind", {kind.kind, kind.kind.lower(), f"{kind.kind.lower()}.{kind.group}"}),
        ("spec.names.plural", {kind.plural, f"{kind.plural}.{kind.group}"}),
        ("spec.names.shortNames", set(kind.short_names)),
    ]
    return next((where for where, names in fields if name in names), "spec.names.singular")
