"""Fixtures for controller tests: hollow nodes and running controllers (helpers in controller_support)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from controller_support import FAST, SECRET, HollowNode, ManagerFactory, NodeFactory

from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.controllers import ControllersConfig, build_manager
from persys.runtime import Manager
from persys.store import ObjectStore
from persys.store.server import EtcdServer, free_port


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


