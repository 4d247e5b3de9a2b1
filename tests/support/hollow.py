"""Hollow nodes: a simulated agent on a free port whose Node heartbeats, for tests that run controllers.

A hollow node is a real agent process-in-a-task (HMAC, HTTP, executor) over the simulated
runtime, registered as a Node with a heartbeat the test can pause (``beating.clear()``) to make
the node look lost. ``SECRET`` is the agents' HMAC secret, to hand to the controllers, and
``FAST`` the controller timings that make such tests converge in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.events import EventHub
from persys.agentd.runtime import Runtime
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.errors import Conflict
from persys.resources import REGISTRY
from persys.resources.model import now_iso
from persys.store import ObjectStore
from persys.store.server import free_port

SECRET = secrets.token_hex(32).encode()

FAST = dict(lease_ttl=2, grace_seconds=1.0, full_pass_seconds=5.0, backoff_initial=0.3, backoff_max=1.0,
            heartbeat_timeout=1.5, node_lost_timeout=2.0, poll_seconds=1.0, node_check_seconds=0.3,
            stats_seconds=0.3, agent_timeout=3.0, stream_backoff_max=0.5, schedule_retry_seconds=2.0)


@dataclass
class HollowNode:
    """A node with a simulated agent on a free port and a heartbeat that a test can stop."""

    name: str
    agent: Agent
    store: ObjectStore
    labels: dict[str, str] = field(default_factory=dict)
    capacity: dict[str, str] = field(default_factory=lambda: {"cpu": "4", "memory": "8Gi"})
    beating: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def runtime(self) -> SimulatedRuntime:
        runtime = self.agent.runtime
        assert isinstance(runtime, SimulatedRuntime)
        return runtime

    async def register(self) -> None:
        node = REGISTRY.parse({"kind": "Node", "metadata": {"name": self.name},
                               "spec": {"address": self.agent.config.address, "labels": self.labels}})
        await self.store.create(node)
        await self.heartbeat()
        self.beating.set()
        self.task = asyncio.create_task(self._beat(), name=f"heartbeat-{self.name}")

    async def heartbeat(self) -> None:
        for _ in range(5):
            with contextlib.suppress(Conflict):
                await self._heartbeat()
                return

    async def _heartbeat(self) -> None:
        await self.store.update_status("Node", "", self.name, {
            "capacity": dict(self.capacity), "allocatable": dict(self.capacity), "runtime": "simulated",
            "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady", "message": "",
                            "lastTransitionTime": now_iso()}],
            "lastHeartbeatTime": now_iso()})

    async def _beat(self) -> None:
        while True:
            await self.beating.wait()
            with contextlib.suppress(Exception):
                await self.heartbeat()
            await asyncio.sleep(0.2)

    async def restart_empty(self) -> None:
        """The agent killed and started again on its port: the operations under way die with it (no grace to
        finish them), and a simulated runtime forgets every container."""
        config = self.agent.config
        self.agent.executor.close = functools.partial(self.agent.executor.close, grace=0.0)  # type: ignore[method-assign]
        await self.agent.stop()
        self.agent = Agent(AgentConfig(name=config.name, host=config.host, port=config.port, secrets=config.secrets,
                                       runtime_factory=lambda n, hub: SimulatedRuntime(n, hub, SimulationConfig())))
        await self.agent.start()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.agent._runner is not None:
            await self.agent.stop()


async def start_hollow_node(name: str, store: ObjectStore, *, labels: dict[str, str] | None = None,
                            start_latency: float = 0.0, exit_after: float | None = None, settle: float = 0.0,
                            capacity: dict[str, str] | None = None,
                            runtime_factory: Callable[[str, EventHub], Runtime] | None = None) -> HollowNode:
    """Start an agent on a free port (simulated, unless ``runtime_factory`` gives another runtime, such
    as Docker), register its Node and keep its heartbeat going."""
    sim = SimulationConfig(start_latency=start_latency, exit_after=exit_after, settle=settle)
    agent = Agent(AgentConfig(name=name, host="127.0.0.1", port=free_port(), secrets={"default": SECRET},
                              runtime_factory=runtime_factory or (lambda n, hub: SimulatedRuntime(n, hub, sim))))
    await agent.start()
    node = HollowNode(name, agent, store, labels=dict(labels or {}))
    if capacity:
        node.capacity = capacity
    await node.register()
    return node
