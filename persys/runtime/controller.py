"""``Controller``: one ``reconcile(key) -> Result`` and the loop the framework runs around it.

A controller declares the kind it owns, its indexes, and the other kinds it watches with how
their objects map to its keys (``watches()``); the framework creates the informers, wires the
handlers each time the process becomes leader and unwires them when it stops leading. The
manager hands it the shared informers, the store, the clock and the leader's fence. Handlers
enqueue keys, N workers take keys from the work queue and call ``reconcile``: an exception
retries that key alone with back-off (logged and counted; no object can stop the controller),
``TerminalError`` drops it, ``Result(requeue_after=…)`` brings it back later. A periodic resync
re-enqueues every cached key so that nothing depends on a single event being seen.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram

from persys.errors import NotLeader, TerminalError
from persys.observability.logging import bound, get_logger
from persys.observability.tracing import tracer
from persys.resources.model import ObjectKey, Resource
from persys.runtime.clock import Clock, SystemClock
from persys.runtime.informer import IndexFunc, Informer
from persys.runtime.workqueue import ShutDown, WorkQueue
from persys.store.objects import Fence, ObjectStore

if TYPE_CHECKING:
    from persys.runtime.manager import Manager

RECONCILE_DURATION = Histogram("persys_reconcile_duration_seconds", "Time spent in one reconcile",
                               ["controller"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))
RECONCILE_ERRORS = Counter("persys_reconcile_errors_total", "Reconciles that raised", ["controller"])


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next: nothing, or another look after ``requeue_after`` seconds."""

    requeue_after: float | None = None


MAX_REQUEUE = 86_400.0  # a day: a later look is a resync's job, and inf or NaN must never reach the queue

KeyMap = Callable[[str, Resource, Resource | None], Iterable[ObjectKey]]
"""(event type, object, previous object or None) → the keys of the controller's kind to enqueue."""


@dataclass(frozen=True)
class Watch:
    """Another kind a controller watches: each change enqueues the keys ``keys`` maps it to."""

    kind: str
    keys: KeyMap
    indexes: Mapping[str, IndexFunc] = field(default_factory=dict)


class Controller:
    """Subclass, set ``kind``, implement ``reconcile``; declare ``watches()`` and ``indexes()`` to see more."""

    kind: str = ""
    name: str = ""
    workers: int = 1
    resync_period: float | None = None

    def __init__(self) -> None:
        self.name = self.name or type(self).__name__.lower()
        self._manager: Manager | None = None
        self.queue: WorkQueue[ObjectKey] = WorkQueue(self.name)
        self.log = get_logger(self.name)

    # -- what the manager provides --

    @property
    def manager(self) -> Manager:
        if self._manager is None:
            raise RuntimeError(f"controller {self.name} is not added to a manager")
        return self._manager

    @property
    def store(self) -> ObjectStore:
        return self.manager.store

    @property
    def clock(self) -> Clock:
        return self._manager.clock if self._manager is not None else SystemClock()

    @property
    def cache(self) -> Informer:
        """The informer of this controller's own kind."""
        return self.manager.informer(self.kind)

    @property
    def fence(self) -> Fence:
        """Pass to every store write: it fails with NotLeader once this process is deposed."""
        return self.manager.fence()

    def informer(self, kind: str) -> Informer:
        """The shared informer of ``kind`` (declared in ``watches()``)."""
        return self.manager.informer(kind)

    def bind(self, manager: Manager) -> None:
        """Called by ``Manager.add``: create the informers and indexes this controller reads."""
        self._manager = manager
        own = self.manager.informer(self.kind)
        for name, func in self.indexes().items():
            own.add_index(name, func)
        for watch in self.watches():
            informer = self.manager.informer(watch.kind)
            for name, func in watch.indexes.items():
                informer.add_index(name, func)
        self.declare()

    # -- what a controller declares --

    def indexes(self) -> Mapping[str, IndexFunc]:
        """Indexes on the cache of ``kind``: name → function giving the values an object is found under."""
        return {}

    def watches(self) -> Sequence[Watch]:
        """Other kinds to watch, and how their changes map to keys of ``kind``."""
        return ()

    def declare(self) -> None:
        """Build what needs the manager (an EventRecorder, a client); called once by ``bind``."""

    # -- wiring, done each time this process becomes leader --

    def setup(self) -> None:
        """Called when leadership starts, before handlers are connected: reset per-term state here."""

    def _connect(self) -> None:
        with self.queue.backlog():  # the replay of every cached object: behind live changes
            self.cache.add_handler(self.enqueue_handler, owner=self)
            for watch in self.watches():
                self.manager.informer(watch.kind).add_handler(self._mapper(watch.keys), owner=self)

    def _mapper(self, keys: KeyMap) -> Callable[[str, Resource, Resource | None], None]:
        def enqueue(event_type: str, obj: Resource, old: Resource | None) -> None:
            for key in keys(event_type, obj, old):
                self.queue.add(key)
        return enqueue

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        """Handler for changes of ``kind``: enqueue the object's own key (override to filter)."""
        self.queue.add(obj.key)

    def enqueue_all(self) -> None:
        with self.queue.backlog():
            for key in self.cache.keys():
                self.queue.add(key)

    async def reconcile(self, key: ObjectKey) -> Result:
        raise NotImplementedError

    # -- the loop --

    async def run(self) -> None:
        """Run workers (and the resync loop) until cancelled; a fresh queue each time."""
        self.queue = WorkQueue(self.name, clock=self.clock)
        self.setup()
        self._connect()
        try:
            async with asyncio.TaskGroup() as group:
                for i in range(self.workers):
                    group.create_task(self._worker(), name=f"{self.name}-worker-{i}")
                if self.resync_period:
                    group.create_task(self._resync(self.resync_period), name=f"{self.name}-resync")
                for name, runnable in self.runnables():
                    group.create_task(runnable, name=f"{self.name}-{name}")
        finally:
            self.queue.shutdown()
            self.teardown()

    def runnables(self) -> list[tuple[str, Any]]:
        """Extra long-lived coroutines to run while leader (e.g. the monitor's stream followers)."""
        return []

    def teardown(self) -> None:
        """Disconnect handlers added in ``setup`` (called when leadership ends)."""
        for informer in self.manager.informers():
            informer.remove_handlers(self)

    async def _resync(self, period: float) -> None:
        while True:
            await self.clock.sleep(period)
            self.on_resync()

    def on_resync(self) -> None:
        self.enqueue_all()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)
            _end_if_cancelled(self, key)

    async def process(self, key: ObjectKey) -> None:
        """One reconcile with metrics, a span, and the retry policy."""
        with tracer("persys.controllers").start_as_current_span(
                f"{self.name}.reconcile", attributes={"persys.key": str(key)}) as span, \
                bound(controller=self.name, key=str(key)), RECONCILE_DURATION.labels(self.name).time():
            try:
                result = await self.reconcile(key)
            except TerminalError as e:
                RECONCILE_ERRORS.labels(self.name).inc()
                self.log.error("reconcile failed for good", key=str(key), error=str(e))
                span.record_exception(e)
                self.queue.forget(key)
                return
            except NotLeader:
                raise
            except Exception as e:  # this key's failure, retried with this key's back-off; never the process's
                RECONCILE_ERRORS.labels(self.name).inc()
                span.record_exception(e)
                delay = self.queue.add_rate_limited(key)
                self.log.warning("reconcile failed; retrying", key=str(key), error=f"{type(e).__name__}: {e}",
                                 retry_in=round(delay, 3))
                return
        self.queue.forget(key)
        if result.requeue_after is not None:
            self.queue.add_after(key, _bounded(result.requeue_after))


def _end_if_cancelled(controller: Controller, key: ObjectKey) -> None:
    """Raise the cancel a reconcile swallowed: turned into an error the retry policy caught (a client whose
    session is closed under it as the process stops) or lost in Python 3.11's ``wait_for``. The task still
    counts it (``cancelling()``); left alone, the worker waits on the queue for ever and so does its stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        controller.log.warning("a cancel was swallowed inside reconcile; ending the worker", key=str(key))
        raise asyncio.CancelledError


def _bounded(delay: float) -> float:
    """A requeue delay the queue can hold: NaN looks again now, anything above a day waits a day."""
    if math.isnan(delay):
        return 0.0
    return min(max(delay, 0.0), MAX_REQUEUE)
