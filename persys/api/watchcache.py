"""The watch cache: one etcd watch per kind per API server, fanned out to every client watch of it.

Without it each client watch held an etcd watch stream of its own, and 1,500 idle watches took an
API server from 124 to 254 MiB. Here the first watch of a kind starts the kind's cache: one etcd
watch from the revision it starts at, each event decoded and serialised once (the ndjson line every
client gets) and kept in a bounded history (the last ``history`` events). A client watch is a
subscription: a filter (namespace, label selector) and a bounded queue of those lines.

A watch that starts at a revision the history holds (or at "now") is served from the cache: the
events after it are replayed, then live ones follow. One asking for an older revision is answered
by a watch of its own on etcd, as before (410 when etcd has compacted it); so is one that comes
while the cache cannot start (etcd down: the client gets the 503 at once). A subscriber whose
queue fills (a client that does not read) is ended with a 410 ERROR line, as Kubernetes ends slow
watchers, rather than holding the fan-out or memory. When the etcd stream breaks, every
subscriber gets the error as its last line (as a watch of its own would) and resumes with its
last revision, from the history; the cache resumes from its own revision. When etcd compacts away
from under the cache, subscribers get the 410 ERROR line and the cache starts again from the
current revision with an empty history. A closed watch is unsubscribed, and its queue is garbage:
memory goes with the watch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from persys import jsoncodec
from persys.errors import Gone, PersysError
from persys.observability.logging import get_logger
from persys.resources import Kind, Selector
from persys.runtime.backoff import Backoff
from persys.store import ObjectStore
from persys.store.etcd import RawEvent
from persys.store.keys import kind_prefix

log = get_logger("api.watchcache")

HISTORY = 1000  # events kept per kind for watches that resume
START_WAIT = 5.0  # seconds a watch waits for its kind's cache to start before it watches etcd itself
QUEUE = 1000  # lines a subscriber may fall behind before it is ended


def line(kind_of_event: str, obj: dict[str, Any]) -> bytes:
    """One ndjson line of a watch stream."""
    return jsoncodec.dumps({"type": kind_of_event, "object": obj}) + b"\n"


@dataclass(frozen=True)
class Cached:
    """One event as every client gets it."""

    revision: int
    line: bytes
    namespace: str
    labels: dict[str, str]


@dataclass(eq=False)
class Subscription:
    """One client watch: what it wants, and the lines (or the error that ends it) waiting for it."""

    namespace: str | None
    selector: Selector
    after: int  # events up to this revision are the client's already (its list, or its last event)
    queue: asyncio.Queue[Cached | PersysError] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    ended: bool = False

    def wants(self, event: Cached) -> bool:
        return event.revision > self.after and (self.namespace is None or event.namespace == self.namespace) \
            and self.selector.matches(event.labels)

    def offer(self, event: Cached) -> None:
        if self.ended or not self.wants(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.end(Gone(f"the watch fell {QUEUE} events behind; list and watch again"))

    def end(self, error: PersysError) -> None:
        """End the watch with ``error`` (its last line), making room for it if need be."""
        if self.ended:
            return
        self.ended = True
        while self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(error)


class KindCache:
    """The cache of one kind: its etcd watch, history and subscribers."""

    def __init__(self, store: ObjectStore, kind: Kind, *, history: int = HISTORY) -> None:
        self.store, self.kind = store, kind
        self.history: deque[Cached] = deque(maxlen=history)
        self.subscribers: set[Subscription] = set()
        self.start = 0  # the cache has every event after this revision (and before its history filled)
        self.revision = 0  # the last revision it has seen
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def oldest(self) -> int:
        """A watch may start after this revision and be served from here."""
        return self.history[0].revision - 1 if len(self.history) == self.history.maxlen else self.start

    async def subscribe(self, after: int | None, namespace: str | None, selector: Selector) -> Subscription | None:
        """A subscription to events after ``after`` (None: from now); None when the history is too short
        or the cache has not started within ``START_WAIT``."""
        try:
            await asyncio.wait_for(self.ready.wait(), START_WAIT)
        except TimeoutError:
            return None
        if after is not None and after < self.oldest:
            return None
        sub = Subscription(namespace, selector, self.revision if after is None else after)
        for event in self.history:  # no await from here to the add: no event is missed or doubled
            sub.offer(event)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    async def run(self) -> None:
        """Follow etcd forever; resume after a break, start again after a compaction."""
        retry = Backoff(0.1, 5.0)
        prefix = kind_prefix(self.kind)
        while True:
            if not self.ready.is_set():
                self.start = self.revision = await self._now(retry)
                self.history.clear()
                self.ready.set()
            try:
                async for raw in self.store.etcd.watch(prefix, self.revision + 1):
                    retry.reset()
                    self._publish(raw)
            except Gone as e:
                log.warning("watch cache compacted away; starting again", kind=self.kind.kind, error=e.message)
                self.ready.clear()
                self._end_all(Gone(f"{e.message}; list and watch again"))
            except PersysError as e:
                delay = retry.next()
                log.warning("watch cache stream broke; resuming", kind=self.kind.kind, error=e.message,
                            retry_in=round(delay, 2))
                self._end_all(e)
                await asyncio.sleep(delay)

    def _end_all(self, error: PersysError) -> None:
        for sub in self.subscribers:
            sub.end(error)
        self.subscribers.clear()

    async def _now(self, retry: Backoff) -> int:
        while True:
            try:
                return await self.store.etcd.revision()
            except PersysError as e:
                delay = retry.next()
                log.warning("watch cache cannot read the revision", kind=self.kind.kind, error=e.message)
                await asyncio.sleep(delay)

    def _publish(self, raw: RawEvent) -> None:
        self.revision = max(self.revision, raw.revision)
        if not raw.value:
            return
        data = jsoncodec.loads(raw.value)
        meta = data.setdefault("metadata", {})
        meta["resourceVersion"] = str(raw.revision)
        if self.kind.spec_field != "spec":
            data.pop("status", None)
        if not self.kind.builtin:
            data["apiVersion"] = self.kind.api_version
        kind_of_event = "DELETED" if raw.type == "DELETE" else "ADDED" if raw.version == 1 else "MODIFIED"
        event = Cached(raw.revision, line(kind_of_event, data), str(meta.get("namespace") or ""),
                       dict(meta.get("labels") or {}))
        self.history.append(event)
        for sub in self.subscribers:
            sub.offer(event)


class WatchCaches:
    """The kind caches of one API server, started by the first watch of each kind."""

    def __init__(self, store: ObjectStore, *, history: int = HISTORY) -> None:
        self.store, self.history = store, history
        self._caches: dict[tuple[str, str], KindCache] = {}

    def of(self, kind: Kind) -> KindCache:
        key = (kind.group, kind.kind)
        cache = self._caches.get(key)
        if cache is None or cache.kind is not kind:  # a custom kind defined anew is followed anew
            if cache is not None and cache.task is not None:
                cache.task.cancel()
            cache = self._caches[key] = KindCache(self.store, kind, history=self.history)
            cache.task = asyncio.create_task(cache.run(), name=f"watch-cache-{kind.plural}")
        return cache

    def subscribers(self) -> int:
        return sum(len(c.subscribers) for c in self._caches.values())

    async def close(self) -> None:
        tasks = [c.task for c in self._caches.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._caches.clear()
