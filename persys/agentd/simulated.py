"""The simulated runtime: hollow containers for scale tests, like kubemark's hollow nodes.

Nothing runs: each workload is an in-memory record that goes ``created`` → ``running`` after
a configurable start latency and, when asked, exits on its own after a while (to exercise
restarts and back-off). An image from the registry on closed loopback port 9 (``127.0.0.1:9/…``,
the tests' way to break a pull on Docker) fails to pull here too. The agent API on top is the
real one, so a hundred hollow nodes in one process load the API, scheduler, monitor and
reconciler like a hundred real nodes.
Configure with arguments or ``PERSYS_SIM_START_LATENCY`` / ``PERSYS_SIM_EXIT_AFTER`` /
``PERSYS_SIM_EXIT_CODE`` (seconds, seconds, integer).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from persys.agentd.events import EventHub
from persys.agentd.runtime import ImagePullFailed, WorkloadSpec, WorkloadState
from persys.errors import NotFound
from persys.resources.model import now_iso


@dataclass
class SimulationConfig:
    """How hollow containers behave."""

    start_latency: float = 0.0
    exit_after: float | None = None
    exit_code: int = 1
    settle: float = 0.0  # an apply ends this long after its container runs (docker-compose up returns late)
    unpullable: str = "127.0.0.1:9/"  # images under this prefix fail to pull, as they do on Docker

    @classmethod
    def from_env(cls) -> SimulationConfig:
        exit_after = os.environ.get("PERSYS_SIM_EXIT_AFTER")
        return cls(start_latency=float(os.environ.get("PERSYS_SIM_START_LATENCY") or 0.0),
                   exit_after=float(exit_after) if exit_after else None,
                   exit_code=int(os.environ.get("PERSYS_SIM_EXIT_CODE") or 1))


@dataclass
class _Hollow:
    state: WorkloadState
    logs: list[str] = field(default_factory=list)
    exit_task: asyncio.Task[None] | None = None


class SimulatedRuntime:
    """A Runtime with no containers: in-memory state, configurable latency and injected exits."""

    name = "simulated"

    def __init__(self, node: str, hub: EventHub, config: SimulationConfig | None = None) -> None:
        self.node = node
        self.hub = hub
        self.config = config or SimulationConfig.from_env()
        self._hollows: dict[str, _Hollow] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        tasks = [h.exit_task for h in self._hollows.values() if h.exit_task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _get(self, uid: str) -> _Hollow:
        hollow = self._hollows.get(uid)
        if hollow is None:
            raise NotFound(f"workload {uid} not found on node {self.node}")
        return hollow

    async def apply(self, workload: WorkloadSpec) -> WorkloadState:
        current = self._hollows.get(workload.uid)
        if current and current.state.specHash == workload.spec_hash and (
                current.state.state == "running" or not workload.wants_running):
            return current.state
        image = str(workload.spec.get("image") or "")
        if self.config.unpullable and image.startswith(self.config.unpullable):
            raise ImagePullFailed(f"simulated pull of {image}: connection refused")
        if current:
            await self.remove(workload.uid)
        state = WorkloadState(uid=workload.uid, name=workload.name, namespace=workload.namespace,
                              node=self.node, containerID=secrets.token_hex(32), state="created",
                              specHash=workload.spec_hash)
        self._hollows[workload.uid] = _Hollow(state)
        self.hub.publish(state)
        if workload.wants_running:
            started = await self.start(workload.uid)
            await asyncio.sleep(self.config.settle)
            return started
        return state

    async def start(self, uid: str) -> WorkloadState:
        hollow = self._get(uid)
        if hollow.state.state == "running":
            return hollow.state
        if self.config.start_latency:
            await asyncio.sleep(self.config.start_latency)
        hollow = self._get(uid)
        hollow.state.state, hollow.state.startedAt = "running", now_iso()
        hollow.state.exitCode, hollow.state.finishedAt = None, None
        hollow.logs.append(f"{hollow.state.startedAt} hollow container {hollow.state.name} started")
        if self.config.exit_after is not None:
            hollow.exit_task = asyncio.create_task(self._exit_later(hollow), name=f"sim-exit-{uid}")
        self.hub.publish(hollow.state)
        return hollow.state

    async def _exit_later(self, hollow: _Hollow) -> None:
        await asyncio.sleep(self.config.exit_after or 0.0)
        hollow.exit_task = None
        self._finish(hollow, self.config.exit_code, "injected exit")

    def _finish(self, hollow: _Hollow, code: int, why: str) -> None:
        if hollow.exit_task:
            hollow.exit_task.cancel()
            hollow.exit_task = None
        hollow.state.state, hollow.state.exitCode, hollow.state.finishedAt = "exited", code, now_iso()
        hollow.logs.append(f"{hollow.state.finishedAt} hollow container exited with {code} ({why})")
        self.hub.publish(hollow.state)

    async def stop(self, uid: str, timeout: float = 10.0) -> WorkloadState:
        hollow = self._get(uid)
        if hollow.state.state == "running":
            self._finish(hollow, 0, "stopped")
        return hollow.state

    async def restart(self, uid: str) -> WorkloadState:
        await self.stop(uid)
        return await self.start(uid)

    async def remove(self, uid: str) -> None:
        hollow = self._get(uid)
        if hollow.exit_task:
            hollow.exit_task.cancel()
        del self._hollows[uid]
        self.hub.publish(WorkloadState(uid=uid, name=hollow.state.name, namespace=hollow.state.namespace,
                                       node=self.node, state="missing", specHash=hollow.state.specHash,
                                       message="removed"))

    async def get(self, uid: str) -> WorkloadState:
        return self._get(uid).state

    async def list(self) -> list[WorkloadState]:
        return [h.state for h in self._hollows.values()]

    async def logs(self, uid: str, tail: int = 50) -> str:
        lines = self._get(uid).logs
        return "".join(line + "\n" for line in lines[-tail:] if tail > 0)

    async def follow_logs(self, uid: str, tail: int = 50) -> AsyncGenerator[str, None]:
        hollow = self._get(uid)
        sent = max(len(hollow.logs) - tail, 0)
        while uid in self._hollows:
            for line in hollow.logs[sent:]:
                yield line + "\n"
            sent = len(hollow.logs)
            await asyncio.sleep(0.5)
