"""Fixtures for controller tests: hollow nodes and running controllers (helpers in controller_support)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from controller_support import FAST, SECRET, HollowNode, ManagerFactory, NodeFactory, start_hollow_node

from persys.controllers import ControllersConfig, build_manager
from persys.controllers.manager import ALL_CONTROLLERS
from persys.runtime import Manager
from persys.store import ObjectStore
from persys.store.server import EtcdServer


@pytest.fixture
async def hollow_node(store: ObjectStore) -> AsyncIterator[NodeFactory]:
    nodes: list[HollowNode] = []

    async def start(name: str, **options: Any) -> HollowNode:
        node = await start_hollow_node(name, store, **options)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        await node.stop()


@pytest.fixture
async def controllers(etcd_server: EtcdServer) -> AsyncIterator[ManagerFactory]:
    """Starts managers running Persys's controllers with short timings; stops them all afterwards."""
    running: list[tuple[Manager, asyncio.Task[None]]] = []

    async def start(identity: str = "test", controllers: Sequence[str] = ALL_CONTROLLERS,
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


