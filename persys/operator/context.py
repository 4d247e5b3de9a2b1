"""``Context``: what an operator's handler gets beside its object, and the ``Host`` that provides it.

A handler sees one object and a context: a logger bound to the object, the API client (its
writes fenced by the leader's Lease), an event recorder, ``ensure(child)`` (create or update a
child, controlled by the object, drift undone), ``owned(kind)`` (the children, from the cache)
and ``requeue_after(seconds)``. The host is the process running the operator
(``persys.operator.runner``); it owns the clients, the informers and what this process wrote
that its informers have not shown yet (``written``), so that a handler running again right after
its own write decides on that write and not on a cache that lags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from persys.client.api import ApiClient
from persys.errors import Conflict
from persys.observability.logging import get_logger
from persys.operator.errors import PermanentError
from persys.operator.events import NORMAL, WARNING, EventRecorder
from persys.operator.owners import OWNER_INDEX, adopt, controller_uid, drifted, foreign_controller
from persys.resources.model import Resource
from persys.resources.registry import Registry
from persys.runtime.expectations import Expectations, fresher
from persys.runtime.informer import Informer

_ATTEMPTS = 3  # an ensure that meets a concurrent change reads the child again, this often


class Host(Protocol):
    """What handlers and their controllers need from the process that runs them."""

    name: str
    client: ApiClient
    recorder: EventRecorder
    written: Expectations[Resource]

    @property
    def registry(self) -> Registry: ...

    async def owned_informer(self, kind: str, owner_kind: str) -> Informer:
        """The synced informer of ``kind``, whose changes re-enqueue their ``owner_kind`` owners."""
        ...


class Context:
    """One handler call's view: the object, and the means to act on it."""

    def __init__(self, host: Host, obj: Resource) -> None:
        self.host = host
        self.object = obj
        self.client = host.client
        self.recorder = host.recorder
        self.log = get_logger(host.name).bind(kind=obj.kind, namespace=obj.metadata.namespace,
                                              name=obj.metadata.name)
        self.requeue: float | None = None

    def requeue_after(self, seconds: float) -> None:
        """Look at this object again after ``seconds`` (the earliest of several asks wins)."""
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    async def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """Record an Event about the object (``persys describe`` lists them)."""
        await self.recorder.record(self.object, WARNING if warning else NORMAL, reason, message)

    async def owned(self, kind: str) -> list[Resource]:
        """The objects of ``kind`` this object controls, from the cache (and this process's writes), by name."""
        informer = await self.host.owned_informer(kind, self.object.kind)
        uid = self.object.metadata.uid
        found = {c.key: fresher(c, self.host.written.get(c.key)) or c for c in informer.by_index(OWNER_INDEX, uid)}
        for obj in self.host.written.values():  # created here, not in the cache yet
            if obj.kind == informer.kind and obj.key not in found and uid in controller_uid(obj):
                found[obj.key] = obj
        return sorted(found.values(), key=lambda c: c.metadata.name)

    async def ensure(self, child: Resource | Mapping[str, Any]) -> Resource:
        """Create ``child`` or bring it back to what is given here; it is controlled by this object.

        ``child`` is a Resource or a manifest (a dict). It lands in this object's namespace with an
        owner reference to it, so the garbage collector deletes it with its owner and a change to
        it brings this object back to its handler, where ``ensure`` undoes the change. Only what
        the operator declares is compared (spec with defaults, labels, annotations): status and
        finalizers are the child's own. Answers the child as stored.
        """
        kind, wanted = self._parse(child)
        informer = await self.host.owned_informer(kind, self.object.kind)
        key = wanted.key
        current = fresher(informer.get(key), self.host.written.get(key))
        for _ in range(_ATTEMPTS):
            if current is None:
                try:
                    return self._wrote(await self.client.create(adopt(wanted, self.object, None)))
                except Conflict:  # created meanwhile (the cache lags): look at it
                    current = await self.client.get(kind, key.name, key.namespace)
            other = foreign_controller(current, self.object)
            if other is not None:
                raise PermanentError(f"{kind} {key.name!r} is controlled by {other.kind} {other.name!r}")
            desired = adopt(wanted, self.object, current)
            if not drifted(self.host.registry.get(kind), desired, current):
                return current
            try:
                written, _ = await self.client.apply(desired)
                return self._wrote(written)
            except Conflict:  # changed since we read it: read it again and compare again
                current = await self.client.get(kind, key.name, key.namespace)
        raise Conflict(f"{kind} {key.name!r} kept changing; ensure gave up after {_ATTEMPTS} attempts")

    def _parse(self, child: Resource | Mapping[str, Any]) -> tuple[str, Resource]:
        """Validate ``child`` and apply its kind's defaults (as the API will), in this object's namespace."""
        registry = self.host.registry
        data = dict(child) if isinstance(child, Mapping) else registry.get(child.kind).to_wire(child)
        kind = registry.get(str(data.get("kind") or ""))
        meta = dict(data.get("metadata") or {})
        if kind.namespaced and self.object.metadata.namespace:
            meta["namespace"] = self.object.metadata.namespace
        for server_side in ("uid", "resourceVersion", "creationTimestamp", "generation"):
            meta.pop(server_side, None)
        return kind.kind, kind.parse({**data, "metadata": meta})

    def _wrote(self, obj: Resource) -> Resource:
        self.host.written.expect(obj.key, obj, obj.resource_version)
        return obj
