"""A simulated node for these tests: an in-process agent (simulated runtime) plus Node heartbeats.

Kept here rather than imported from the controller tests so that these tests do not break
when that folder's helpers move.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.errors import Conflict
from persys.resources import REGISTRY
from persys.resources.model import now_iso
from persys.store import ObjectStore
from persys.store.server import free_port

SECRET = secrets.token_hex(32).encode()

# short timings so that the controllers act within a test's patience
FAST: dict[str, Any] = dict(
    lease_ttl=2, grace_seconds=1.0, full_pass_seconds=5.0, backoff_initial=0.3, backoff_max=1.0,
    heartbeat_timeout=1.5, node_lost_timeout=2.0, poll_seconds=1.0, node_check_seconds=0.3, stats_seconds=0.3,
    agent_timeout=3.0, stream_backoff_max=0.5, schedule_retry_seconds=2.0)

CAPACITY = {"cpu": "4", "memory": "8Gi"}


def ready_status() -> dict[str, Any]:
    return {"capacity": dict(CAPACITY), "allocatable": dict(CAPACITY), "runtime": "simulated",
            "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady", "message": "",
                            "lastTransitionTime": now_iso()}], "lastHeartbeatTime": now_iso()}


class SimNode:
    """``start()`` runs the agent, registers the Node and heartbeats until ``stop()``."""

    def __init__(self, name: str, store: ObjectStore) -> None:
        self.name = name
        self.store = store
        self.agent = Agent(AgentConfig(name=name, host="127.0.0.1", port=free_port(), secrets={"default": SECRET},
                                       runtime_factory=lambda n, hub: SimulatedRuntime(n, hub, SimulationConfig())))
        self._beat: asyncio.Task[None] | None = None

    async def start(self) -> SimNode:
        await self.agent.start()
        await self.store.create(REGISTRY.parse({"kind": "Node", "metadata": {"name": self.name},
                                                "spec": {"address": self.agent.config.address}}))
        await self.heartbeat()
        self._beat = asyncio.create_task(self._beating(), name=f"heartbeat-{self.name}")
        return self

    async def heartbeat(self) -> None:
        for _ in range(5):  # the monitor writes node status too
            with contextlib.suppress(Conflict):
                await self.store.update_status("Node", "", self.name, ready_status())
                return

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            with contextlib.suppress(Exception):
                await self.heartbeat()

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            await asyncio.gather(self._beat, return_exceptions=True)
        await self.agent.stop()
