"""A whole cluster in this process for the example operators' end-to-end tests (``persys.up.Cluster``).

A real etcd child, the API, the controllers (garbage collector included), the DNS server and an
agent on the real dockerd, on free 127.0.0.1 ports in a temporary home, with an operators-role
certificate issued in it the way a user issues one. The containers it started are removed by
their node label afterwards, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import yaml

from persys.client import ApiClient
from persys.operator import Connection, Operator, OperatorRunner
from persys.security import pki
from persys.security.paths import HomePaths
from persys.store.server import free_port
from persys.up import Cluster, UpConfig, check_docker, prepare_home
from tests.operator.harness import IDENTITY
from tests.support.eventually import eventually

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "operators"


@dataclass
class UpCluster:
    config: UpConfig
    paths: HomePaths
    admin: ApiClient

    def connection(self) -> Connection:
        return Connection(self.config.server_url, ca=self.paths.ca_cert, cert=self.paths.cert(IDENTITY),
                          key=self.paths.key(IDENTITY))

    @contextlib.asynccontextmanager
    async def operator(self, op: Operator) -> AsyncIterator[OperatorRunner]:
        async with OperatorRunner(op, self.connection(), listen=("127.0.0.1", 0), lease_ttl=5) as runner:
            yield runner

    async def apply_file(self, path: Path, **spec: object) -> None:
        """``persys apply -f path`` (every document), with ``spec`` keys replaced in the last one."""
        documents = [d for d in yaml.safe_load_all(await asyncio.to_thread(path.read_text)) if d]
        documents[-1]["spec"].update(spec)
        for document in documents:
            await self.admin.apply_raw(document)


@contextlib.asynccontextmanager
async def up_cluster(tmp: Path, *, gateway: bool = False) -> AsyncIterator[UpCluster]:
    await check_docker()
    node = f"op-{secrets.token_hex(3)}"
    config = UpConfig(home=tmp / "home", etcd_port=free_port(), etcd_peer_port=free_port(), http_port=free_port(),
                      api_port=free_port(), controllers_port=free_port(), agent_port=free_port(),
                      dns_port=free_port(), node_name=node, gateway_port=free_port() if gateway else None)
    paths = prepare_home(config)
    pki.issue(paths, IDENTITY, "operators")
    cluster, stop = Cluster(config), asyncio.Event()
    task = asyncio.create_task(cluster.run(stop), name="up-cluster")
    admin = ApiClient(config.server_url, ca=paths.ca_cert, cert=paths.cert("admin"), key=paths.key("admin"))
    try:
        await asyncio.wait_for(cluster.ready.wait(), 60)
        await eventually(lambda: _node_ready(admin, node), what=f"node {node} Ready", timeout=60)
        yield UpCluster(config, paths, admin)
    finally:
        await admin.close()
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)
        cluster.etcd_server.stop()
        await _remove_containers(node)


async def _node_ready(client: ApiClient, node: str) -> bool:
    nodes, _ = await client.list("Node", None)
    return any(n.metadata.name == node and any(c.get("type") == "Ready" and c.get("status") == "True"
                                               for c in n.status.get("conditions", [])) for n in nodes)


async def _remove_containers(node: str) -> None:
    docker = aiodocker.Docker()
    try:
        for container in await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={node}"]}):
            with contextlib.suppress(aiodocker.exceptions.DockerError):
                await container.delete(force=True)
    finally:
        await docker.close()
