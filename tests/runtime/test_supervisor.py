"""The supervisor: a dead task is logged, counted and restarted with back-off, /healthz stays red until it
has run again for a while, a service that cannot come up fails ``start``, and cancelling ends everything."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest
from structlog.testing import capture_logs

from persys.runtime.clock import FakeClock
from persys.runtime.supervisor import (
    TASK_FAILURES,
    Component,
    Health,
    Named,
    Service,
    Supervisor,
    forever,
    health_response,
    run_process,
)
from tests.support.eventually import eventually


class Flaky:
    """A service whose first ``failures`` runs die; it counts runs and cleanups."""

    def __init__(self, name: str, failures: int = 0) -> None:
        self.name = name
        self.failures = failures
        self.runs = 0
        self.cleanups = 0

    async def run(self) -> None:
        self.runs += 1
        try:
            if self.runs <= self.failures:
                raise RuntimeError(f"boom {self.runs}")
            await forever()
        finally:
            self.cleanups += 1


class Listener(Component):
    """A component whose ``open`` may fail, with one background loop."""

    def __init__(self, loop: Service | None = None, fail: Exception | None = None) -> None:
        super().__init__("listener")
        self.loop, self.fail = loop, fail
        self.opened = self.closed = 0

    async def open(self) -> None:
        self.opened += 1
        if self.fail is not None:
            raise self.fail

    async def cleanup(self) -> None:
        self.closed += 1

    def background(self) -> list[Service]:
        return [self.loop] if self.loop is not None else []


def failures_of(task: str) -> float:
    return float(TASK_FAILURES.labels(task)._value.get())


async def test_a_dead_task_is_logged_counted_restarted_with_back_off_and_red_until_stable() -> None:
    clock = FakeClock()
    worker = Flaky("worker", failures=2)
    counted = failures_of("worker")
    with capture_logs() as logs:
        async with Supervisor("test", backoff=(1.0, 8.0), stable_after=10.0, clock=clock) as supervisor:
            await supervisor.start(worker)
            await eventually(lambda: worker.runs == 1 and not supervisor.health().healthy)
            health = supervisor.health()
            assert health.failing[0].task == "worker" and health.failing[0].to_dict()["restarting"] is True
            assert health.reason == "task worker died (1 in a row): RuntimeError: boom 1"
            died = [e for e in logs if e["event"] == "task died; restarting"]
            assert died and died[0]["task"] == "worker" and isinstance(died[0]["exc_info"], RuntimeError)

            clock.advance(1.2)  # the first back-off: 1 s (± 10 %)
            await eventually(lambda: worker.runs == 2 and supervisor.health().failing[0].failures == 2)
            clock.advance(1.5)  # the second is 2 s (± 10 %): not yet
            await asyncio.sleep(0.05)
            assert worker.runs == 2
            clock.advance(1.0)
            await eventually(lambda: worker.runs == 3)
            assert not supervisor.health().healthy  # running again, but not for long enough
            clock.advance(10.0)
            assert supervisor.health() == Health()
    assert failures_of("worker") - counted == 2
    assert worker.cleanups == 3


async def test_a_service_that_cannot_come_up_fails_start_unwrapped_and_stops_the_others() -> None:
    other = Flaky("other")

    async def taken() -> None:
        raise OSError("address already in use")

    with pytest.raises(OSError, match="already in use"):  # not an ExceptionGroup
        async with Supervisor() as supervisor:
            await supervisor.start(other)
            await supervisor.start(Named("listener", taken), ready=asyncio.Event())
    assert other.cleanups == 1


async def test_cancelling_the_process_ends_every_task_and_its_cleanup() -> None:
    clock = FakeClock()
    services = [Flaky("a"), Flaky("b"), Flaky("backing-off", failures=1)]
    started = asyncio.Event()

    async def process() -> None:
        async with Supervisor(clock=clock) as supervisor:
            for service in services:
                await supervisor.start(service)
            started.set()
            await forever()

    main = asyncio.create_task(process())
    await started.wait()
    await eventually(lambda: all(s.runs == 1 for s in services))
    main.cancel()
    with pytest.raises(asyncio.CancelledError):
        await main
    assert [s.cleanups for s in services] == [1, 1, 1]  # the one waiting out its back-off ends too


async def test_a_service_that_returns_has_finished_and_is_not_restarted() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    async with Supervisor() as supervisor:
        await supervisor.start(Named("once", once))
        await eventually(lambda: not supervisor.tasks())
        await asyncio.sleep(0.05)
        assert runs == 1 and supervisor.health().healthy


async def test_health_scope_and_names() -> None:
    async with Supervisor(clock=FakeClock()) as supervisor:
        await supervisor.start(Flaky("agent-n1/heartbeat", failures=1))
        await eventually(lambda: not supervisor.health().healthy)
        assert not supervisor.health("agent-n1").healthy
        assert supervisor.health("agent-n10").healthy and supervisor.health("dns").healthy
        with pytest.raises(ValueError, match="already supervised"):
            await supervisor.start(Flaky("agent-n1/heartbeat"))
    with pytest.raises(RuntimeError, match="not running"):
        await supervisor.start(Flaky("late"))


async def test_health_response_names_the_task_and_the_error() -> None:
    async with Supervisor(clock=FakeClock()) as supervisor:
        await supervisor.start(Flaky("dns/watch", failures=1))
        await eventually(lambda: not supervisor.health().healthy)
        response = health_response(supervisor.health(), node="n1")
    assert response.status == 503
    assert response.text is not None
    body = json.loads(response.text)
    assert body["status"] == "failing" and body["node"] == "n1" and body["failing"][0]["task"] == "dns/watch"
    assert "RuntimeError: boom 1" in body["reason"]
    assert health_response(Health()).status == 200


async def test_component_on_its_own_supervisor() -> None:
    loop = Flaky("listener/loop", failures=1)
    component = Listener(loop)
    async with component:
        assert component.ready.is_set() and component.opened == 1
        await eventually(lambda: not component.health().healthy)
        assert component.health().failing[0].task == "listener/loop"
    assert component.closed == 1 and not component.ready.is_set() and loop.cleanups == 1


async def test_component_that_cannot_open_fails_start_and_leaves_nothing() -> None:
    component = Listener(Flaky("listener/loop"), fail=OSError("port taken"))
    with pytest.raises(OSError, match="port taken"):
        await component.start()
    assert component.closed == 1 and component.loop is not None and component.loop.runs == 0  # type: ignore[attr-defined]


async def test_components_under_the_process_supervisor_end_with_it() -> None:
    first, second = Listener(), Listener(Flaky("listener/loop"))
    second.name = "second"

    async def start(supervisor: Supervisor) -> None:
        await first.start(supervisor)
        await second.start(supervisor)
        assert sorted(supervisor.tasks()) == ["listener", "listener/loop", "second"]
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    await run_process("test", start)
    assert (first.closed, second.closed) == (1, 1)


async def test_stop_cancels_again_a_component_whose_loop_swallowed_the_first_cancel(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from persys.runtime import supervisor as supervisor_module
    monkeypatch.setattr(supervisor_module, "STOP_RECANCEL", 0.2)
    swallowed = 0

    async def stubborn() -> None:  # what a loop around Python 3.11's wait_for does to one cancel
        nonlocal swallowed
        while True:
            try:
                await forever()
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    component = Listener(loop=Named("stubborn", stubborn))
    await component.start()
    await asyncio.wait_for(component.stop(), 10)  # before, stop() waited for ever
    assert swallowed == 1 and component.closed == 1
