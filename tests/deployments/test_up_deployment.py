"""``persys up`` runs the Deployment controller by default: a Deployment on a whole cluster (real
etcd, the API, the controllers, an agent on the real dockerd) gets its containers, and deleting it
deletes its Workloads and their containers (the garbage collector follows the owner references)."""

from __future__ import annotations

from pathlib import Path

import aiodocker

from tests.deployments.watching import controlled_by, deployment, wait_rolled_out
from tests.operator.upcluster import up_cluster
from tests.support.eventually import eventually


async def containers(node: str, name_prefix: str) -> list[str]:
    """The workload names of this cluster's containers (its node's label: the dockerd is shared)."""
    async with aiodocker.Docker() as docker:
        found = await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={node}"]})
        names = [str(c["Labels"].get("persys.dev/name", "")) for c in found]
    return [n for n in names if n.startswith(name_prefix)]


async def test_up_runs_deployments(tmp_path: Path) -> None:
    async with up_cluster(tmp_path) as cluster:
        client, node = cluster.admin, cluster.config.node_name
        await client.apply_raw(deployment("hello", replicas=2))
        obj = await wait_rolled_out(client, "hello", 2, "persys/busybox:local", timeout=90)
        workloads = [w for w in (await client.list("Workload", "default"))[0] if controlled_by(w, obj)]
        assert len(workloads) == 2
        assert sorted(await containers(node, "hello-")) == sorted(w.metadata.name for w in workloads)
        await client.delete("Deployment", "hello")

        async def gone() -> bool:
            left = [w for w in (await client.list("Workload", "default"))[0] if w.metadata.name.startswith("hello-")]
            return not left and not await containers(node, "hello-")

        await eventually(gone, timeout=90, what="the Deployment's Workloads and containers deleted")
