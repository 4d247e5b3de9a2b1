"""Events: what controllers tell users about an object (``persys get events``), aggregated and batched.

The same (object, reason, message) recorded again bumps ``count`` and ``lastTimestamp`` of one
Event instead of adding another, as Kubernetes does. New Events are created in batches, a group
commit: the first one recorded is written at once, and those recorded while it is being written go
together in the next transaction (``ObjectStore.create_many``: one etcd revision for up to ``BATCH``
Events; one that exists already sends that batch back to one write each). The recorders of every
controller on one store share the batches. An idle recorder adds no
delay; a busy one writes far fewer revisions. Events are best-effort: a failure to record one is
logged, never raised. The store keeps them on an etcd lease so they expire.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from persys.errors import Conflict, NotFound, NotLeader, PersysError, StoreUnavailable
from persys.observability.logging import get_logger
from persys.resources.kinds import EVENT
from persys.resources.model import ObjectMeta, Resource
from persys.runtime.clock import Clock, SystemClock, to_iso
from persys.store.objects import BATCH, Fence, ObjectStore

NORMAL, WARNING = "Normal", "Warning"

# the reasons Persys's controllers record
SCHEDULED, FAILED_SCHEDULING = "Scheduled", "FailedScheduling"
CREATED, STARTED, KILLING, RESTARTED, BACKOFF, STOPPED = "Created", "Started", "Killing", "Restarted", "BackOff", \
    "Stopped"
NODE_NOT_READY, RESCHEDULED = "NodeNotReady", "Rescheduled"

RECENT_NAMES = 1024  # Event names an EventRecorder remembers having written

log = get_logger("events")


def event_name(obj: Resource, reason: str, message: str) -> str:
    """A stable name per (object, reason, message): repeats land on the same Event."""
    digest = hashlib.sha256(f"{obj.kind}|{obj.metadata.uid}|{reason}|{message}".encode()).hexdigest()[:12]
    return f"{obj.metadata.name}.{digest}"[:63].strip("-.")


@dataclass
class _Pending:
    """A new Event waiting for its batch, and the recorder call waiting for it."""

    event: Resource
    fence: Fence | None
    now: str
    done: asyncio.Future[None]


class _Batches:
    """The group commit of one store: the Events every recorder on it records, written batch after batch."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.recent: OrderedDict[str, None] = OrderedDict()  # names recorded lately: likely to exist
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None  # writes the pending batches, then ends

    async def create(self, event: Resource, fence: Fence | None, now: str) -> None:
        """Create ``event`` (bump it when it exists) in the next batch; returns once it is written."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(event, fence, now, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="events")
        await done

    async def _flush(self) -> None:
        """Write the pending Events batch after batch until none is left (one fence and distinct names a batch)."""
        while self._pending:
            batch: list[_Pending] = []
            names: set[str] = set()
            rest: list[_Pending] = []
            for item in self._pending:
                if item.done.done():
                    continue  # its caller gave up (cancelled)
                if len(batch) < BATCH and item.event.metadata.name not in names \
                        and (not batch or item.fence == batch[0].fence):
                    batch.append(item)
                    names.add(item.event.metadata.name)
                else:
                    rest.append(item)
            self._pending = rest
            try:
                await self._write(batch)
            finally:
                for item in batch:  # whatever went wrong, nobody waits for ever
                    _settle(item.done, StoreUnavailable("the Event was not written"))

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) > 1 and await self.store.create_many([item.event for item in batch], fence=batch[0].fence):
                for item in batch:
                    _settle(item.done)
                return
        except PersysError as e:
            for item in batch:
                _settle(item.done, e)
            return
        for item in batch:  # one by one: the ones that exist are bumped
            meta = item.event.metadata
            try:
                try:
                    await self.store.create(item.event, fence=item.fence)
                except Conflict:
                    await self.store.modify(EVENT.kind, meta.namespace, meta.name, _bump(item.now), fence=item.fence)
                _settle(item.done)
            except PersysError as e:
                _settle(item.done, e)


_BATCHES: WeakKeyDictionary[ObjectStore, _Batches] = WeakKeyDictionary()


class EventRecorder:
    """Records Events about objects on behalf of one component (``source``). Every recorder on one store
    shares its batches: the scheduler's, reconciler's and status controller's Events go in one transaction."""

    def __init__(self, store: ObjectStore, source: str, *, clock: Clock | None = None) -> None:
        self.store = store
        self.source = source
        self.clock = clock or SystemClock()
        batches = _BATCHES.get(store)
        if batches is None:
            batches = _BATCHES[store] = _Batches(store)
        self._batches = batches
        self._recent = batches.recent

    async def record(self, obj: Resource, type_: str, reason: str, message: str, *,
                     fence: Fence | None = None) -> None:
        """Create the Event or bump its count; never raises (except NotLeader).

        Most Events are new: they are created straight away (no read first, in a batch with the others
        recorded meanwhile) and bumped only on a conflict. Names recorded lately are bumped first.
        """
        namespace = obj.metadata.namespace or "default"
        name = event_name(obj, reason, message)
        now = to_iso(self.clock.now())
        try:
            if name in self._recent:
                try:
                    await self.store.modify(EVENT.kind, namespace, name, _bump(now), fence=fence)
                    self._remember(name)
                    return
                except NotFound:
                    pass  # expired meanwhile
            await self._batches.create(self._new(obj, namespace, name, type_, reason, message, now), fence, now)
            self._remember(name)
        except NotLeader:
            raise
        except PersysError as e:
            log.warning("could not record event", reason=reason, object=str(obj.key), error=e.message)

    def _remember(self, name: str) -> None:
        self._recent[name] = None
        self._recent.move_to_end(name)
        while len(self._recent) > RECENT_NAMES:
            self._recent.popitem(last=False)

    def _new(self, obj: Resource, namespace: str, name: str, type_: str, reason: str, message: str,
             now: str) -> Resource:
        spec: dict[str, Any] = {
            "involvedObject": {"kind": obj.kind, "namespace": obj.metadata.namespace, "name": obj.metadata.name,
                               "uid": obj.metadata.uid},
            "type": type_, "reason": reason, "message": message, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": self.source,
        }
        return Resource(kind=EVENT.kind, metadata=ObjectMeta(name=name, namespace=namespace), spec=spec)


def _settle(done: asyncio.Future[None], error: BaseException | None = None) -> None:
    if not done.done():
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


def _bump(now: str) -> Any:
    def change(event: Resource) -> None:
        event.spec["count"] = int(event.spec.get("count", 1)) + 1
        event.spec["lastTimestamp"] = now
    return change


async def events_for(store: ObjectStore, obj: Resource, reason: str | None = None) -> list[Resource]:
    """The Events about ``obj`` (optionally of one reason), oldest first; tests and the CLI read them."""
    items, _ = await store.list(EVENT.kind, obj.metadata.namespace or "default")
    found = [e for e in items if e.spec["involvedObject"].get("name") == obj.metadata.name
             and e.spec["involvedObject"].get("kind") == obj.kind and (reason is None or e.spec["reason"] == reason)]
    return sorted(found, key=lambda e: str(e.spec.get("firstTimestamp") or ""))
