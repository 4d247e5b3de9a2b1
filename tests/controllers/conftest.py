"""Fixtures for controller tests: hollow nodes (simulated agents + heartbeats) and running controllers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.controllers import ControllersConfig, build_manager
from persys.errors import Conflict
from persys.resources import REGISTRY, Resource
from persys.resources.model import now_iso
from persys.runtime import Manager
from persys.store import ObjectStore
from persys.store.server import EtcdServer, free_port

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

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.agent._runner is not None:
            await self.agent.stop()


NodeFactory = Callable[..., Awaitable[HollowNode]]
ManagerFactory = Callable[..., Awaitable[Manager]]


@pytest.fixture
async def hollow_node(store: ObjectStore) -> AsyncIterator[NodeFactory]:
    nodes: list[HollowNode] = []

    async def start(name: str, *, labels: dict[str, str] | None = None, start_latency: float = 0.0,
                    exit_after: float | None = None, capacity: dict[str, str] | None = None) -> HollowNode:
        sim = SimulationConfig(start_latency=start_latency, exit_after=exit_after)
        config = AgentConfig(name=name, host="127.0.0.1", port=free_port(), secrets={"default": SECRET},
                             runtime_factory=lambda n, hub: SimulatedRuntime(n, hub, sim))
        agent = Agent(config)
        await agent.start()
        node = HollowNode(name, agent, store, labels=dict(labels or {}))
        if capacity:
            node.capacity = capacity
        nodes.append(node)
        await node.register()
        return node

    yield start
    for node in nodes:
        await node.stop()


@pytest.fixture
async def controllers(etcd_server: EtcdServer) -> AsyncIterator[ManagerFactory]:
    """Starts managers running Persys's controllers with short timings; stops them all afterwards."""
    running: list[tuple[Manager, asyncio.Task[None]]] = []

    async def start(identity: str = "test", controllers: Sequence[str] = ("scheduler", "reconciler", "monitor"),
                    **overrides: Any) -> Manager:
        config = ControllersConfig.from_dict({**FAST, **overrides})
        manager = build_manager(etcd_server.url, listen=None, config=config, hmac_secret=SECRET, identity=identity,
                                controllers=controllers)
        task = asyncio.create_task(manager.run(), name=f"manager-{identity}")
        running.append((manager, task))
        return manager

    yield start
    for manager, task in running:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def eventually(probe: Callable[[], Awaitable[Any]], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll the async ``probe`` until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def workload(name: str, **spec: Any) -> Resource:
    return REGISTRY.parse({"kind": "Workload", "metadata": {"name": name},
                           "spec": {"image": "persys/busybox:local", "command": ["sleep", "3600"], **spec}})
