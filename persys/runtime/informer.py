"""The informer: list + watch one kind from a source into a local cache (client-go).

Controllers read the cache instead of etcd and are told about changes through handlers,
which only enqueue keys. The informer survives outages of its source (resumes the watch from
its last revision with back-off), compactions (relists and emits synthetic DELETED for keys
that vanished meanwhile, so no delete is ever lost) and silent watches (a watchdog relists
when nothing, not even a BOOKMARK, arrived for ``stall_seconds``).

The source is anything that lists with a revision and watches from one (``Source``): the
``ObjectStore`` (etcd) for the built-in controllers, the API for operators
(``persys.operator.informer``), so both share this one cache, index and handler machinery.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from prometheus_client import Counter

from persys.errors import Gone, Unavailable
from persys.observability.logging import get_logger
from persys.resources.model import ObjectKey, Resource
from persys.resources.registry import Registry
from persys.runtime.backoff import Backoff

WATCH_RELISTS = Counter("persys_watch_relists_total", "Informer relists", ["kind", "reason"])
WATCH_STALLS = Counter("persys_watch_stalls_total", "Watches silent longer than the watchdog interval", ["kind"])

ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"

Handler = Callable[[str, Resource, Resource | None], None]
"""Called with (event type, object, previous object or None); must only enqueue keys."""
IndexFunc = Callable[[Resource], list[str]]

log = get_logger("informer")


class SourceEvent(Protocol):
    """One change a source reports: ADDED, MODIFIED, DELETED (the last state), or BOOKMARK (no object)."""

    @property
    def type(self) -> str: ...

    @property
    def object(self) -> Resource | None: ...

    @property
    def revision(self) -> int: ...


class Source(Protocol):
    """What an informer reads: a list with its revision, then the changes after that revision.

    ``watch`` raises ``Gone`` when the revision is compacted and ``Unavailable`` when the stream
    breaks or ends; the informer relists after the first and resumes from its revision after the second.
    """

    @property
    def registry(self) -> Registry: ...

    async def list(self, kind_name: str, namespace: str | None = None) -> tuple[list[Resource], int]: ...

    def watch(self, kind_name: str, namespace: str | None = None, *,
              revision: int) -> AsyncIterator[SourceEvent]: ...


class Informer:
    """A cache of every object of ``kind`` (in ``namespace`` when given), kept current by a watch."""

    def __init__(self, source: Source, kind: str, *, namespace: str | None = None,
                 stall_seconds: float = 300.0, backoff: tuple[float, float] = (0.1, 5.0)) -> None:
        self.source = source
        self.kind = source.registry.get(kind).kind
        self.namespace = namespace
        self.stall_seconds = stall_seconds
        self.backoff = backoff
        self.revision = 0
        self.synced = asyncio.Event()
        self._items: dict[ObjectKey, Resource] = {}
        self._handlers: list[Handler] = []
        self._owners: list[object] = []
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[ObjectKey]]] = {}

    # -- reading the cache (objects are shared: copy() before changing one) --

    def get(self, key: ObjectKey) -> Resource | None:
        return self._items.get(key)

    def get_by(self, namespace: str, name: str) -> Resource | None:
        return self._items.get(ObjectKey(self.kind, namespace, name))

    def objects(self) -> list[Resource]:
        return list(self._items.values())

    def keys(self) -> list[ObjectKey]:
        return list(self._items)

    def by_index(self, index: str, value: str) -> list[Resource]:
        """The objects found under ``value``, in no particular order (sort where order matters)."""
        keys = self._indexes[index].get(value, ())
        return [self._items[k] for k in keys if k in self._items]

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.synced.wait(), timeout)

    # -- wiring --

    def add_handler(self, handler: Handler, owner: object = None) -> None:
        """Call ``handler`` for every change; it is replayed the current cache as ADDED.

        ``owner`` (by default the object of a bound method) lets ``remove_handlers`` take it away.
        """
        self._handlers.append(handler)
        self._owners.append(owner if owner is not None else getattr(handler, "__self__", None))
        for obj in list(self._items.values()):
            handler(ADDED, obj, None)

    def remove_handlers(self, owner: object) -> None:
        kept = [(h, o) for h, o in zip(self._handlers, self._owners, strict=True) if o is not owner]
        self._handlers = [h for h, _ in kept]
        self._owners = [o for _, o in kept]

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Maintain an index ``name``: ``func(obj)`` gives the values an object is found under.

        Adding an index that exists already does nothing (controllers sharing an informer may ask twice).
        """
        if name in self._index_funcs:
            return
        self._index_funcs[name] = func
        self._indexes[name] = {}
        for key, obj in self._items.items():
            self._index(name, key, obj)

    def _index(self, name: str, key: ObjectKey, obj: Resource) -> None:
        for value in self._index_funcs[name](obj):
            self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, key: ObjectKey, obj: Resource) -> None:
        for name, func in self._index_funcs.items():
            for value in func(obj):
                bucket = self._indexes[name].get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._indexes[name][value]

    def _apply(self, event_type: str, obj: Resource) -> None:
        key = obj.key
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        if event_type == DELETED:
            self._items.pop(key, None)
        else:
            self._items[key] = obj
            for name in self._index_funcs:
                self._index(name, key, obj)
        for handler in list(self._handlers):
            try:
                handler(event_type, obj, old)
            except Exception:  # a handler bug must not stop the cache
                log.exception("informer handler failed", kind=self.kind, key=str(key))

    # -- the loop --

    async def run(self) -> None:
        """List, then watch; forever (cancel to stop)."""
        need_list, reason = True, "initial"
        retry = Backoff(*self.backoff)
        while True:
            try:
                if need_list:
                    await self._relist(reason)
                    need_list = False
                await self._watch()
                need_list, reason = True, "stall"
                WATCH_STALLS.labels(self.kind).inc()
            except Gone:
                need_list, reason = True, "gone"
                log.info("watch compacted; relisting", kind=self.kind, revision=self.revision)
            except Unavailable as e:
                delay = retry.next()
                log.warning("source unavailable; retrying", kind=self.kind, error=str(e), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            retry.reset()

    async def _relist(self, reason: str) -> None:
        items, revision = await self.source.list(self.kind, self.namespace)
        WATCH_RELISTS.labels(self.kind, reason).inc()
        fresh = {obj.key: obj for obj in items}
        for key in [k for k in self._items if k not in fresh]:
            self._apply(DELETED, self._items[key])
        for key, obj in fresh.items():
            old = self._items.get(key)
            if old is None:
                self._apply(ADDED, obj)
            elif old.metadata.resourceVersion != obj.metadata.resourceVersion:
                self._apply(MODIFIED, obj)
        self.revision = revision
        self.synced.set()

    async def _watch(self) -> None:
        """Follow changes until the watch is silent for ``stall_seconds`` (then return); BOOKMARKs count."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.stall_seconds) as deadline:
                async for event in self.source.watch(self.kind, self.namespace, revision=self.revision):
                    deadline.reschedule(loop.time() + self.stall_seconds)
                    self._on_event(event.type, event.object, event.revision)
        except TimeoutError:
            return

    def _on_event(self, event_type: str, obj: Resource | None, revision: int) -> None:
        self.revision = max(self.revision, revision)
        if obj is None or event_type == BOOKMARK:
            return  # only a newer revision to resume from
        if event_type == DELETED:
            if obj.key in self._items:
                self._apply(DELETED, obj)
            return
        self._apply(ADDED if obj.key not in self._items else MODIFIED, obj)


def stats(informer: Informer) -> dict[str, Any]:
    """What ``/healthz`` tells about an informer."""
    return {"kind": informer.kind, "synced": informer.synced.is_set(), "objects": len(informer.objects()),
            "revision": informer.revision}
