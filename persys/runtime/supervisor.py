"""The supervisor: every long-lived coroutine of a process as a named task under one TaskGroup.

A *service* has a ``name`` and an ``async def run()`` that runs until cancelled and cleans up in
its ``finally``. A process opens one ``Supervisor`` (``async with``), starts its services under
it and waits; leaving the block cancels every task at once and waits for their cleanup, so a
process stops its parts one way only. A *component* (the API server, the DNS server, an agent)
is a main service, its listener, plus the background loops that go with it, started as a unit.

A task that dies with an exception is restarted with ``Backoff``; the process does not end.
A dead loop takes one function away (heartbeats, fresh DNS answers) while the listeners keep
serving; ending the process would turn it into an outage of everything in it (in ``persys up``,
the whole cluster), and a restart heals the transient surprises. It is not hidden either: the
death is logged at once with its traceback, counted in ``persys_task_failures_total{task}``, and
``health()`` (what ``/healthz`` answers) stays red, naming the task and the error, until the
task has run ``stable_after`` seconds again. Two exceptions: a service whose first run fails
before it is ready (a port taken) makes ``start`` raise, because a process that cannot come up
should say so and exit; and a service that returns has finished its work, so it is not restarted.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import Counter

from persys.httpedge import GuardedSite, app_runner
from persys.observability import metrics
from persys.observability.logging import get_logger
from persys.runtime.backoff import Backoff
from persys.runtime.clock import Clock, SystemClock

TASK_FAILURES = Counter("persys_task_failures_total", "Supervised tasks that died with an exception", ["task"])

log = get_logger("supervisor")
STOP_RECANCEL = 10.0  # seconds a cancelled task gets to end before it is cancelled again


class Service(Protocol):
    """Something that runs until cancelled, cleaning up in ``finally``."""

    @property
    def name(self) -> str: ...

    async def run(self) -> None: ...


@dataclass(frozen=True)
class Named:
    """A coroutine function as a service: ``Named("controllers", manager.run)``."""

    name: str
    target: Callable[[], Awaitable[None]]

    async def run(self) -> None:
        await self.target()


@dataclass(frozen=True)
class Failure:
    """A supervised task that died and has not yet run ``stable_after`` seconds since."""

    task: str
    error: str
    failures: int  # in a row
    died_at: float
    restarted_at: float | None = None  # None: waiting out its back-off

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "error": self.error, "failures": self.failures,
                "restarting": self.restarted_at is None}


@dataclass(frozen=True)
class Health:
    """What ``/healthz`` reports: the tasks that are failing (none: healthy)."""

    failing: tuple[Failure, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.failing

    @property
    def reason(self) -> str:
        return "; ".join(f"task {f.task} died ({f.failures} in a row): {f.error}" for f in self.failing) or "ok"

    def to_dict(self) -> dict[str, Any]:
        if self.healthy:
            return {"status": "ok"}
        return {"status": "failing", "reason": self.reason, "failing": [f.to_dict() for f in self.failing]}


def health_response(health: Health, **details: Any) -> web.Response:
    """A ``/healthz`` answer: 200 when healthy, else 503 naming the dead tasks and their errors."""
    return web.json_response({**details, **health.to_dict()}, status=200 if health.healthy else 503)


def in_scope(task: str, scope: str) -> bool:
    """``agent-n1`` covers ``agent-n1`` and ``agent-n1/heartbeat``, not ``agent-n10``; ``""`` covers all."""
    return not scope or task == scope or task.startswith(scope + "/")


class Supervisor:
    """Runs a process's services as named tasks of one TaskGroup, restarting the ones that die."""

    def __init__(self, name: str = "persys", *, backoff: tuple[float, float] = (1.0, 30.0),
                 stable_after: float = 30.0, clock: Clock | None = None) -> None:
        self.name = name
        self.backoff = backoff
        self.stable_after = stable_after
        self.clock = clock or SystemClock()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, Failure] = {}

    async def __aenter__(self) -> Supervisor:
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """Cancel every task and wait for their cleanup; the block's own error propagates as it is."""
        group, self._group = self._group, None
        assert group is not None
        pending = set(self._tasks.values())
        for task in pending:
            task.cancel()
        try:
            while pending:
                _, pending = await asyncio.wait(pending, timeout=STOP_RECANCEL)
                for task in pending:  # a cancel swallowed inside it (Python 3.11's wait_for and TaskGroup can)
                    log.warning("task still running after its cancel; cancelling it again", task=task.get_name())
                    task.cancel()
        finally:
            await self._close(group, et, exc, tb)

    async def _close(self, group: asyncio.TaskGroup, et: type[BaseException] | None, exc: BaseException | None,
                     tb: Any) -> None:
        if isinstance(exc, Exception):  # not wrapped in an ExceptionGroup: the caller sees its OSError
            await group.__aexit__(None, None, None)
        else:
            await group.__aexit__(et, exc, tb)
        self._tasks.clear()

    def tasks(self) -> list[str]:
        """Names of the supervised tasks that have not ended."""
        return list(self._tasks)

    async def start(self, service: Service, *, ready: asyncio.Event | None = None) -> None:
        """Run ``service`` as the task ``service.name``; with ``ready``, return once it is set.

        If the first run ends before ``ready`` is set, its error is raised here and it is not restarted.
        """
        if self._group is None:
            raise RuntimeError(f"supervisor {self.name} is not running: start services inside `async with`")
        if service.name in self._tasks:
            raise ValueError(f"a task named {service.name!r} is already supervised")
        first: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if ready else None
        task = self._group.create_task(self._supervise(service, first), name=service.name)
        self._tasks[service.name] = task
        task.add_done_callback(lambda done: self._forget(service.name, done))
        if ready is not None and first is not None:
            await _until_ready(ready, first)

    def cancel(self, name: str) -> None:
        """Stop the task ``name`` for good (not restarted, no longer failing); nothing when it is not running."""
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
        self._failures.pop(name, None)

    def health(self, scope: str = "") -> Health:
        """The failing tasks (within ``scope``, see ``in_scope``); a restarted task counts until stable."""
        now = self.clock.now()
        return Health(tuple(f for name, f in sorted(self._failures.items()) if in_scope(name, scope)
                            and (f.restarted_at is None or now - f.restarted_at < self.stable_after)))

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]

    async def _supervise(self, service: Service, first: asyncio.Future[None] | None) -> None:
        retry = Backoff(*self.backoff, clock=self.clock)
        while True:
            began = self.clock.now()
            try:
                await service.run()
            except Exception as e:
                if first is not None and not first.done():
                    first.set_exception(e)
                    return
                if self.clock.now() - began >= self.stable_after:
                    retry.reset()  # it had recovered: this is a new streak, not the next step of the old one
                await self._died(service.name, e, retry)
                continue
            if first is not None and not first.done():
                first.set_exception(RuntimeError(f"{service.name} ended before it was ready"))
            self._failures.pop(service.name, None)
            log.info("task finished", task=service.name, supervisor=self.name)
            return

    async def _died(self, name: str, error: Exception, retry: Backoff) -> None:
        """Log and count the death at once, stay red, wait out the back-off; then it runs again."""
        delay = retry.next()
        TASK_FAILURES.labels(name).inc()
        failure = Failure(name, f"{type(error).__name__}: {error}", retry.failures, self.clock.now())
        self._failures[name] = failure
        log.error("task died; restarting", task=name, supervisor=self.name, error=failure.error,
                  failures=failure.failures, retry_in=round(delay, 3), exc_info=error)
        await self.clock.sleep(delay)
        self._failures[name] = replace(failure, restarted_at=self.clock.now())


async def _until_ready(ready: asyncio.Event, first: asyncio.Future[None]) -> None:
    """Wait for ``ready``, or for ``first`` to fail (raised here); afterwards failures are restarted."""
    waiting: asyncio.Future[Any] = asyncio.ensure_future(ready.wait())
    try:
        await asyncio.wait({waiting, first}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        if not first.done():
            first.set_result(None)  # ready (or start was cancelled): from now on the supervisor restarts it
    first.result()


class Component(abc.ABC):
    """A part of a process: a main service (``run``: its listener) and its background loops.

    ``start(supervisor)`` runs them as tasks of the process's supervisor and returns once the
    component is ``ready``. Without a supervisor (a test or a benchmark embedding one component)
    they run under a supervisor of their own, which ``stop()`` ends. Either way what ``open``
    opened is closed by ``cleanup`` when ``run`` is cancelled.
    """

    health_scope = ""  # whose tasks ``health()`` reports: "" for every task of the process

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready = asyncio.Event()
        self.supervisor: Supervisor | None = None
        self._own: asyncio.Task[None] | None = None

    @abc.abstractmethod
    async def open(self) -> None:
        """Bind listeners, open clients; raise when the component cannot serve."""

    @abc.abstractmethod
    async def cleanup(self) -> None:
        """Close what ``open`` opened, also after a partial ``open``."""

    def background(self) -> list[Service]:
        """The loops that run beside ``run`` once the component is ready."""
        return []

    async def run(self) -> None:
        """The main service: open, be ready, wait until cancelled, clean up."""
        try:
            await self.open()
            self.ready.set()
            await forever()
        finally:
            self.ready.clear()
            await self.cleanup()

    async def start(self, supervisor: Supervisor | None = None) -> None:
        """Start under ``supervisor`` (the process's), or under one of its own; returns once ready."""
        if supervisor is None:
            await self._start_own()
        else:
            await self._start_under(supervisor)

    async def stop(self) -> None:
        """End a component started without a supervisor (under a process's, it ends with the process)."""
        task, self._own = self._own, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def health(self) -> Health:
        return self.supervisor.health(self.health_scope) if self.supervisor is not None else Health()

    async def _start_under(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        await supervisor.start(self, ready=self.ready)
        for service in self.background():
            await supervisor.start(service)

    async def _start_own(self) -> None:
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._own = asyncio.create_task(self._run_own(started), name=f"{self.name}-supervisor")
        try:
            await started
        except BaseException:
            await self.stop()
            raise

    async def _run_own(self, started: asyncio.Future[None]) -> None:
        async with Supervisor(self.name) as supervisor:
            try:
                await self._start_under(supervisor)
            except Exception as e:
                if not started.done():
                    started.set_exception(e)
                return
            if not started.done():
                started.set_result(None)
            await forever()  # until stop() cancels this task

    async def __aenter__(self) -> Component:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class StatusListener:
    """``/metrics`` and ``/healthz`` of a component that has no HTTP server of its own (port 0: any free port)."""

    def __init__(self, host: str, port: int, component: Component) -> None:
        self.host, self.port, self.component = host, port, component
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", metrics.handler)
        app.router.add_get("/healthz", self.healthz)
        self._runner = app_runner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await GuardedSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def healthz(self, request: web.Request) -> web.Response:
        return health_response(self.component.health(), component=self.component.name)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def forever() -> None:
    """Wait until cancelled (the body of a service whose work is done by callbacks, such as a listener)."""
    await asyncio.Event().wait()


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An Event set by SIGINT or SIGTERM while the block runs; the default handlers are back after it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_until(stop: asyncio.Event, name: str, start: Callable[[Supervisor], Awaitable[None]]) -> None:
    """``start`` components under one supervisor named ``name``; when ``stop`` is set, cancel them all."""
    async with Supervisor(name) as supervisor:
        await start(supervisor)
        log.info("running", process=name, tasks=supervisor.tasks())
        await stop.wait()
    log.info("stopped", process=name)


async def run_process(name: str, start: Callable[[Supervisor], Awaitable[None]]) -> None:
    """A process's main: ``run_until`` SIGINT or SIGTERM."""
    with stop_signals() as stop:
        await run_until(stop, name, start)
