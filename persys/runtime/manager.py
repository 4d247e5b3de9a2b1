"""The manager: runs controllers under one supervisor, with shared informers and leader election.

Informers run all the time (a standby has a warm cache and takes over fast); controllers run
only while this process is leader, and are cancelled the moment leadership is lost. Informers
and the leader loop are services of one ``Supervisor``: a controller that crashes (a bug outside
``reconcile``, whose failures stay with their key) makes this process step down, and the
supervisor logs it, counts it, turns ``/healthz`` red and campaigns again after a back-off. The
manager serves ``/metrics`` and ``/healthz`` (default 127.0.0.1:7072) and shuts down
gracefully: it resigns (revokes its lease) so a standby takes over without waiting a TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from aiohttp import web

from persys.errors import NotLeader
from persys.httpedge import GuardedSite, app_runner
from persys.observability import metrics
from persys.observability.logging import get_logger
from persys.resources.kinds import REGISTRY
from persys.resources.registry import Registry
from persys.runtime.clock import Clock, SystemClock
from persys.runtime.controller import Controller
from persys.runtime.informer import Informer, stats
from persys.runtime.leader import LeaderElector
from persys.runtime.supervisor import Named, Service, Supervisor
from persys.store.etcd import Etcd
from persys.store.objects import Fence, ObjectStore

log = get_logger("manager")

Runnable = Callable[[], Coroutine[Any, Any, None]]


class ControllerCrashed(Exception):
    """Raised when a controller's task died outside ``reconcile``; the manager steps down."""


def _leaves(error: BaseException) -> list[str]:
    """``Type: message`` of every error inside (nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [f"{type(error).__name__}: {error}"]


class _LostLeadership(Exception):
    """Raised inside the leader task group to cancel every controller when leadership ends."""


class Elector(Protocol):
    """What a leadership term needs of an elector: etcd's lease (``LeaderElector``) or the API's Lease."""

    async def acquire(self) -> Any: ...

    async def hold(self) -> None: ...

    async def resign(self) -> None: ...


async def lead(elector: Elector, controllers: Sequence[Controller], leading: asyncio.Event, *,
               until: Callable[[], bool] = lambda: False, on_term: Callable[[], None] = lambda: None,
               **context: Any) -> None:
    """Campaign, run ``controllers`` while leading, and campaign again, until ``until()``.

    A lost lease (or a fenced write refused) ends the term: the controllers are cancelled, the lease
    is resigned, and the next campaign starts. A controller that crashes outside ``reconcile`` ends
    it with ``ControllerCrashed``, for the supervisor to log, count and restart. ``context`` names
    whose term it is in the log.
    """
    async def hold() -> None:
        await elector.hold()
        raise _LostLeadership()

    while not until():
        await elector.acquire()
        on_term()
        leading.set()
        term = asyncio.TaskGroup()
        cancels = _cancels()
        try:
            async with term:
                for controller in controllers:
                    term.create_task(controller.run(), name=f"controller-{controller.name}")
                term.create_task(hold(), name="leader-keepalive")
        except* (_LostLeadership, NotLeader):
            log.warning("stepped down; controllers stopped", **context)
        except* Exception as group:  # the supervisor logs it, turns /healthz red and restarts us
            raise ControllerCrashed("; ".join(_leaves(group))) from group
        finally:
            leading.clear()
            await elector.resign()
            _stop_if_cancelled(term, cancels)  # also over a crash: a controller failing as it is cancelled


def _cancels() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _stop_if_cancelled(term: asyncio.TaskGroup, before: int) -> None:
    """Raise the cancellation a term's TaskGroup swallowed, so that a stopping process stops.

    Python 3.11's TaskGroup, when a child fails while the parent waits for the others, cancels the
    parent itself and never takes that back (fixed in 3.12); a cancel from outside arriving at the
    same moment (a process stopping: its keepalive fails as the Lease is resigned) is swallowed
    with it. What remains above the count before the term, less the group's own, is from outside.
    """
    task = asyncio.current_task()
    if task is None:
        return
    own = 1 if sys.version_info < (3, 12) and getattr(term, "_parent_cancel_requested", False) else 0
    for _ in range(own):
        task.uncancel()
    if task.cancelling() > before:
        raise asyncio.CancelledError()


class Manager:
    """Owns the store, the informers, the elector and the controllers of one process."""

    def __init__(self, etcd: Etcd, *, registry: Registry = REGISTRY, component: str = "controllers",
                 identity: str | None = None, lease_ttl: int = 4, clock: Clock | None = None,
                 listen: tuple[str, int] | None = ("127.0.0.1", 7072), stall_seconds: float = 300.0,
                 owns_etcd: bool = False) -> None:
        self.etcd = etcd
        self.store = ObjectStore(etcd, registry)
        self.clock = clock or SystemClock()
        self.elector = LeaderElector(etcd, component, identity=identity, ttl=lease_ttl)
        self.listen = listen
        self.stall_seconds = stall_seconds
        self.owns_etcd = owns_etcd
        self.controllers: list[Controller] = []
        self._informers: dict[tuple[str, str | None], Informer] = {}
        self._cleanups: list[Runnable] = []
        self._services: list[tuple[Service, asyncio.Event | None]] = []
        self._stop = asyncio.Event()
        self.port: int | None = None
        self.leading = asyncio.Event()
        self.supervisor = Supervisor(component)
        self._running = False  # the supervisor runs: an informer added now is started at once

    # -- building --

    def informer(self, kind: str, namespace: str | None = None) -> Informer:
        """The shared informer of ``kind`` (created on first use)."""
        name = self.store.registry.get(kind).kind
        key = (name, namespace)
        if key not in self._informers:
            self._informers[key] = Informer(self.store, name, namespace=namespace, stall_seconds=self.stall_seconds)
        return self._informers[key]

    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    async def follow(self, kind: str) -> Informer:
        """The informer of a kind registered while the manager runs (a custom kind), started now.

        Before ``run`` this is ``informer``: ``run`` starts it with the others.
        """
        informer = self.informer(kind)
        name = f"informer-{informer.kind}"
        if self._running and name not in self.supervisor.tasks():
            await self.supervisor.start(Named(name, informer.run))
        return informer

    def unfollow(self, kind: str) -> None:
        """Stop and drop the informer ``follow`` started (its kind is no longer served)."""
        if self._informers.pop((kind, None), None) is not None:
            self.supervisor.cancel(f"informer-{kind}")

    def add(self, controller: Controller) -> Controller:
        controller.bind(self)
        self.controllers.append(controller)
        return controller

    def beside(self, service: Service, ready: asyncio.Event | None = None) -> None:
        """Run ``service`` beside the informers in every replica, leading or not (call before ``run``); with
        ``ready``, controllers start once it is set."""
        self._services.append((service, ready))

    def on_close(self, cleanup: Runnable) -> None:
        """Run ``cleanup`` when the manager stops (close clients the controllers opened)."""
        self._cleanups.append(cleanup)

    def fence(self) -> Fence:
        return self.elector.fence()

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader

    # -- running --

    def stop(self) -> None:
        """Ask ``run`` to return (graceful shutdown)."""
        self._stop.set()

    async def run(self) -> None:
        """Run until ``stop()`` or cancellation; always resigns and cleans up."""
        runner = await self._serve() if self.listen is not None else None
        try:
            async with self.supervisor:
                for informer in self.informers():
                    await self.supervisor.start(Named(f"informer-{informer.kind}", informer.run))
                for service, ready in self._services:
                    await self.supervisor.start(service, ready=ready)
                self._running = True
                await self.supervisor.start(Named("leader", self._lead))
                await self._stop.wait()
        finally:
            self._running = False
            self._stop.set()  # however we got here (stop() or cancellation), nothing may campaign again
            await asyncio.shield(self._shutdown(runner))

    async def _shutdown(self, runner: web.AppRunner | None) -> None:
        await self.elector.resign()
        self.leading.clear()
        for cleanup in self._cleanups:
            with contextlib.suppress(Exception):
                await cleanup()
        if runner is not None:
            await runner.cleanup()
        if self.owns_etcd:
            await self.etcd.close()
        log.info("manager stopped")

    async def _lead(self) -> None:
        for informer in self.informers():
            await informer.synced.wait()
        await lead(self.elector, self.controllers, self.leading, until=self._stop.is_set,
                   component=self.elector.component)

    # -- HTTP: /metrics and /healthz --

    async def _serve(self) -> web.AppRunner:
        assert self.listen is not None
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        runner = app_runner(app, access_log=None)
        await runner.setup()
        await GuardedSite(runner, self.listen[0], self.listen[1]).start()
        self.port = int(runner.addresses[0][1])
        log.info("serving metrics and health", address=f"{self.listen[0]}:{self.port}")
        return runner

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        informers = [stats(i) for i in self.informers()]
        synced = all(i["synced"] for i in informers)
        health = self.supervisor.health()
        body = {"status": "ok" if synced and health.healthy else "failing" if not health.healthy else "starting",
                "leader": self.is_leader, "identity": self.elector.identity,
                "controllers": [c.name for c in self.controllers], "informers": informers, **health.to_dict()}
        return web.json_response(body, status=200 if synced and health.healthy else 503)
