"""The prober's supervision of its workers, on a stand-in host (no Docker here: the Docker path is
tests/controllers/test_probes_docker.py): a crashed worker is seen and started again, one that gave up
(its container is being stopped) is not, and a liveness failure goes through the executor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from persys.agentd.events import EventHub
from persys.agentd.executor import Executor
from persys.agentd.prober import CRASHES, Prober, ProbeResults, Target
from persys.agentd.runtime import WorkloadState
from persys.resources.probes import Probe
from tests.support.eventually import eventually


def exec_probe(kind: str, failures: int = 1) -> Probe:
    return Probe(kind=kind, handler="exec", command=("check",), period=1, failure_threshold=failures)


class Host:
    """One running container whose exec probes answer from ``codes`` (an exception: a bug in the prober's path)."""

    def __init__(self, probes: dict[str, Probe]) -> None:
        self.probe_results = ProbeResults()
        self.probes = probes
        self.codes: list[int | Exception] = []
        self.calls = 0
        self.stopped: list[str] = []

    def target(self) -> Target:
        return Target("u1", "", "c1", "t1", self.probes)

    async def probe_targets(self, uid: str) -> list[Target]:
        return [self.target()] if uid == "u1" and not self.stopped else []

    async def exec_in(self, container_id: str, command: tuple[str, ...], timeout: float) -> tuple[int, str]:
        self.calls += 1
        code = self.codes.pop(0) if self.codes else 0
        if isinstance(code, Exception):
            raise code
        return code, f"exit {code}"

    async def stop_unhealthy(self, target: Target, message: str, grace: float | None) -> None:
        self.stopped.append(message)

    async def get(self, uid: str) -> WorkloadState:
        state = WorkloadState(uid=uid, state="running", containerID="c1", startedAt="t1")
        return self.probe_results.judge(state, [("", "c1@t1", "Readiness probe has not passed yet")])

    async def list(self) -> list[WorkloadState]:
        return [await self.get("u1")] if not self.stopped else []


@contextlib.asynccontextmanager
async def prober(host: Host) -> AsyncIterator[Prober]:
    hub, executor = EventHub(), Executor("n1")
    running = Prober("n1", host, hub, executor)
    task = asyncio.create_task(running.run(), name="test-prober")
    try:
        yield running
    finally:
        hub.close()
        await asyncio.wait_for(task, 5)
        await executor.close()


async def test_a_crashed_worker_is_logged_counted_and_started_again() -> None:
    host = Host({"readinessProbe": exec_probe("readinessProbe")})
    host.codes = [RuntimeError("a bug in the probe path")]
    before = CRASHES._value.get()
    async with prober(host) as running:
        await eventually(lambda: CRASHES._value.get() == before + 1, what="the crash counted")
        assert running.workers() == [], "the crashed worker is gone"
        await eventually(lambda: running.workers() == [host.target().key], timeout=10, what="started again")
        state = await eventually(lambda: _ready(host), timeout=10, what="ready once the restarted worker probed")
        assert state.probeMessage == ""


async def _ready(host: Host) -> WorkloadState | None:
    state = await host.get("u1")
    return state if state.containerReady else None


async def test_a_liveness_failure_stops_the_container_once_through_the_executor() -> None:
    host = Host({"livenessProbe": exec_probe("livenessProbe", failures=2)})
    host.codes = [0, 1, 1]
    async with prober(host) as running:
        await eventually(lambda: host.stopped, timeout=10, what="the container stopped")
        assert host.stopped == ["Liveness probe failed 2 times in a row: exec ['check']: exit code 1: exit 1"]
        assert running.workers() == [], "the worker that gave up is not started again"
        calls = host.calls
        await asyncio.sleep(1.5)  # a period and a half: a restarted worker would have probed again
        assert host.calls == calls


def test_targets_are_keyed_by_container_run() -> None:
    first = Target("u1", "web", "c1", "t1", {})
    assert first.key != Target("u1", "web", "c1", "t2", {}).key and first.run_id == "c1@t1"
    assert first.named("x") == "service web: x" and Target("u1", "", "c1", "t1", {}).named("x") == "x"
