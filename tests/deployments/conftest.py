"""Deployment tests: a real API over the session's etcd, the controllers, three nodes and the
Deployment controller, the way ``persys controllers`` runs it (an operator on the API, under the
controllers' certificate).

``rollout_cluster`` is parametrised by the nodes' runtime: ``hollow`` (the simulated agent) or
``docker`` (agents driving the real dockerd; their containers are removed afterwards by node label).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import pytest

from persys.agentd.docker import DockerRuntime
from persys.client import ApiClient
from persys.controllers import ControllersConfig, build_manager
from persys.deployments import runner
from persys.store import ObjectStore
from persys.store.server import EtcdServer
from tests.support.cluster import RunningApi, api, pki_home  # noqa: F401
from tests.support.hollow import FAST, SECRET, HollowNode, start_hollow_node

V2 = "persys/busybox:deploy-v2"  # a second tag of the test image: an image change Docker can run


@dataclass
class RolloutCluster:
    client: ApiClient
    nodes: list[HollowNode]
    runtime: str


@pytest.fixture(params=["hollow", "docker"])
async def rollout_cluster(request: pytest.FixtureRequest, api: RunningApi,  # noqa: F811
                          etcd_server: EtcdServer, store: ObjectStore,
                          tmp_path: Path) -> AsyncIterator[RolloutCluster]:
    runtime = str(request.param)
    prefix = f"{runtime[:3]}-{secrets.token_hex(3)}"
    nodes: list[HollowNode] = []
    manager = build_manager(etcd_server.url, listen=None, config=ControllersConfig.from_dict(FAST),
                            hmac_secret=SECRET, identity="test")
    task = asyncio.create_task(manager.run(), name="manager-deployments")
    deployments = runner(api.secure_url, api.pki.home, lease_ttl=2)
    client = api.client()
    try:
        if runtime == "docker":
            async with aiodocker.Docker() as docker:
                await docker.images.tag("persys/busybox:local", V2)
        for i in range(3):
            factory = (lambda n, hub: DockerRuntime(n, hub, tmp_path / "state" / n, stop_timeout=1)) \
                if runtime == "docker" else None
            nodes.append(await start_hollow_node(f"{prefix}-{i}", store, runtime_factory=factory))
        async with deployments:
            yield RolloutCluster(client, nodes, runtime)
    finally:
        await client.close()
        manager.stop()
        await asyncio.gather(task, return_exceptions=True)
        for node in nodes:
            await node.stop()
        if runtime == "docker":
            await _remove([node.name for node in nodes])


async def _remove(names: list[str]) -> None:
    async with aiodocker.Docker() as docker:
        for name in names:
            for container in await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={name}"]}):
                with contextlib.suppress(aiodocker.exceptions.DockerError):
                    await container.delete(force=True)
        with contextlib.suppress(aiodocker.exceptions.DockerError):
            await docker.images.delete(V2)
