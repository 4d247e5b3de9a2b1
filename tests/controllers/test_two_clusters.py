"""Two clusters on one dockerd, with the same node name and the same workload name, leave each other alone.

Cluster A runs on the session etcd, cluster B on an etcd of its own; each has its controllers and a
docker-backed node called the same. Before containers carried a cluster id, each status controller
saw the other's container in its agent's report and removed it as a stray. A container from before
the label existed is adopted: reported and managed by the agent of its node, whatever its cluster.
The id is made with the PKI and kept in etcd; a home of another cluster is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest
from controller_support import FAST, SECRET, HollowNode, ManagerFactory, eventually, start_hollow_node, workload

from persys.agentd.docker import DockerRuntime
from persys.agentd.dockerapi import (
    LABEL_CLUSTER,
    LABEL_HASH,
    LABEL_NAME,
    LABEL_NAMESPACE,
    LABEL_NODE,
    LABEL_UID,
    Owner,
    container_name,
)
from persys.agentd.events import EventHub
from persys.controllers import ControllersConfig, build_manager
from persys.errors import Conflict
from persys.resources import REGISTRY, Resource
from persys.security import pki
from persys.security.paths import read_cluster_id
from persys.store import Etcd, ObjectStore
from persys.store.clusterid import CLUSTER_ID_KEY, claim_cluster_id
from persys.store.server import EtcdServer
from tests.support.workloads import IMAGE, SLEEP


@pytest.fixture
def node_name() -> str:
    return f"twin-{secrets.token_hex(4)}"


@pytest.fixture
async def cleanup(node_name: str) -> AsyncIterator[None]:
    """Removes every container of ``node_name`` afterwards, whichever cluster it belongs to."""
    yield
    async with aiodocker.Docker() as docker:
        for container in await docker.containers.list(all=True, filters={"label": [f"{LABEL_NODE}={node_name}"]}):
            await container.delete(force=True)


async def docker_node(name: str, store: ObjectStore, state: Path, cluster: str) -> HollowNode:
    return await start_hollow_node(name, store, runtime_factory=lambda n, hub: DockerRuntime(
        n, hub, state, stop_timeout=1, cluster=cluster))


@contextlib.asynccontextmanager
async def cluster_b(etcd: EtcdServer) -> AsyncIterator[ObjectStore]:
    """Controllers on an etcd of their own: a second cluster."""
    await etcd.start()
    client = Etcd(etcd.url)
    manager = build_manager(etcd.url, listen=None, config=ControllersConfig.from_dict(FAST), hmac_secret=SECRET,
                            identity="cluster-b")
    task = asyncio.create_task(manager.run(), name="manager-cluster-b")
    try:
        yield ObjectStore(client, REGISTRY)
    finally:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await client.close()


async def running(store: ObjectStore, name: str) -> Resource | None:
    obj = await store.get("Workload", "default", name)
    return obj if obj.status.get("phase") == "Running" and obj.status.get("containerID") else None


async def test_two_clusters_with_one_node_name_leave_each_other_alone(
        store: ObjectStore, controllers: ManagerFactory, own_etcd: EtcdServer, node_name: str, cleanup: None,
        tmp_path: Path) -> None:
    await controllers()
    node_a = await docker_node(node_name, store, tmp_path / "a", "cluster-a")
    try:
        async with cluster_b(own_etcd) as store_b:
            node_b = await docker_node(node_name, store_b, tmp_path / "b", "cluster-b")
            try:
                await store.create(workload("web"))  # the same name in both: a stray if reported across
                await store_b.create(workload("web"))
                a = await eventually(lambda: running(store, "web"), what="web Running in cluster A", timeout=30)
                b = await eventually(lambda: running(store_b, "web"), what="web Running in cluster B", timeout=30)
                await asyncio.sleep(4 * FAST["poll_seconds"] + FAST["full_pass_seconds"])  # polls and a full pass
                for cluster, node, s, before in (("cluster-a", node_a, store, a), ("cluster-b", node_b, store_b, b)):
                    after = await running(s, "web")
                    assert after is not None and after.status["containerID"] == before.status["containerID"]
                    assert int(after.status.get("restarts") or 0) == 0
                    reported = await node.agent.runtime.list()
                    assert [r.uid for r in reported] == [before.metadata.uid]  # its own only
                    await _assert_running(before.status["containerID"], cluster)
            finally:
                await node_b.stop()
    finally:
        await node_a.stop()


async def _assert_running(container_id: str, cluster: str) -> None:
    async with aiodocker.Docker() as docker:
        info = await (await docker.containers.get(container_id)).show()
    assert info["State"]["Status"] == "running"
    assert info["Config"]["Labels"][LABEL_CLUSTER] == cluster


async def test_a_container_from_before_cluster_ids_is_adopted(node_name: str, cleanup: None, tmp_path: Path) -> None:
    uid = f"legacy-{secrets.token_hex(4)}"
    labels = {LABEL_UID: uid, LABEL_NAME: "old", LABEL_NAMESPACE: "default", LABEL_NODE: node_name,
              LABEL_HASH: "h1"}  # what agents stamped before the cluster label
    async with aiodocker.Docker() as docker:
        old = await docker.containers.create({"Image": IMAGE, "Cmd": SLEEP, "Labels": labels,
                                              "HostConfig": {"NetworkMode": "none"}}, name=container_name(uid))
        await old.start()
    runtime = DockerRuntime(node_name, EventHub(), tmp_path / "state", stop_timeout=1, cluster="cluster-new")
    await runtime.open()
    try:
        reported = {state.uid: state for state in await runtime.list()}
        assert reported[uid].state == "running" and reported[uid].containerID == old.id
        assert (await runtime.stop(uid, timeout=1)).state == "exited"  # managed, not only seen
        await runtime.remove(uid)
        assert uid not in {state.uid for state in await runtime.list()}
    finally:
        await runtime.close()


@pytest.mark.parametrize(("labels", "claimed"), [
    ({LABEL_NODE: "n1", LABEL_CLUSTER: "c1"}, True),
    ({LABEL_NODE: "n1"}, True),  # from before the cluster label: adopted
    ({LABEL_NODE: "n1", LABEL_CLUSTER: "c2"}, False),  # another cluster's node of the same name
    ({LABEL_NODE: "n2", LABEL_CLUSTER: "c1"}, False),
    ({LABEL_CLUSTER: "c1"}, False),
])
def test_what_a_node_of_a_cluster_claims(labels: dict[str, str], claimed: bool) -> None:
    assert Owner("n1", "c1").claims(labels) is claimed


def test_a_node_without_a_cluster_id_claims_only_unlabelled_containers() -> None:
    owner = Owner("n1")
    assert owner.labels() == {LABEL_NODE: "n1"}
    assert owner.claims({LABEL_NODE: "n1"}) and not owner.claims({LABEL_NODE: "n1", LABEL_CLUSTER: "c1"})


def test_the_pki_makes_a_cluster_id_once(tmp_path: Path) -> None:
    paths = pki.init(tmp_path / "home")
    made = read_cluster_id(paths)
    assert len(made) == 16 and int(made, 16) >= 0
    assert read_cluster_id(pki.init(tmp_path / "home")) == made  # kept, like every PKI file
    assert read_cluster_id(pki.init(tmp_path / "other")) != made


async def test_etcd_keeps_the_first_id_and_refuses_another(etcd: Etcd) -> None:
    assert await claim_cluster_id(etcd, "") == ""  # neither has one: nothing to compare
    assert await claim_cluster_id(etcd, "aaaa") == "aaaa"
    assert await claim_cluster_id(etcd, "aaaa") == "aaaa"
    assert await claim_cluster_id(etcd, "") == "aaaa"  # a home from before cluster ids adopts etcd's
    with pytest.raises(Conflict) as refused:
        await claim_cluster_id(etcd, "bbbb")
    assert "bbbb" in refused.value.message and "aaaa" in refused.value.message
    stored = await etcd.get(CLUSTER_ID_KEY)
    assert stored is not None and stored.value == b"aaaa"
