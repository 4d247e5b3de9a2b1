"""A Deployment of 3 replicas on hollow nodes and on Docker: roll, roll back by itself, scale.

Each test runs twice (``rollout_cluster``: simulated agents, then agents on the real dockerd).
The availability of the replicas is checked at every revision of the rollout through an API
watch (``watching.Availability``), never by sampling.
"""

from __future__ import annotations

import re

from persys.resources.deployments import TEMPLATE_HASH_LABEL
from tests.deployments.conftest import V2, RolloutCluster
from tests.deployments.watching import Availability, controlled_by, deployment, wait_rolled_out
from tests.support.eventually import eventually

V1 = "persys/busybox:local"
BROKEN = "127.0.0.1:9/persys-broken:1"  # a closed loopback port: the pull fails at once, on Docker and hollow nodes


async def test_image_change_rolls_through_within_max_unavailable(rollout_cluster: RolloutCluster) -> None:
    client = rollout_cluster.client
    await client.apply_raw(deployment("web", strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}))
    first = await wait_rolled_out(client, "web", 3, V1)
    workloads = [w for w in (await client.list("Workload", "default"))[0] if controlled_by(w, first)]
    hash1 = first.status["templateHash"]
    assert all(re.fullmatch(rf"web-{hash1}-[a-z0-9]{{5}}", w.metadata.name) for w in workloads)
    assert {w.spec["nodeName"] for w in workloads} == {n.name for n in rollout_cluster.nodes}  # spread: one each
    async with Availability(client, first).watching() as seen:
        await client.apply_raw(deployment("web", image=V2,
                                          strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}))
        second = await wait_rolled_out(client, "web", 3, V2)
    assert seen.lowest is not None and seen.lowest >= 3 - 1
    assert {w.metadata.name for w in workloads} <= seen.deleted  # every old replica went (or is going)
    assert second.status["templateHash"] != hash1
    assert [r["revision"] for r in second.status["revisions"]] == [1, 2]
    conditions = {c["type"]: c for c in second.status["conditions"]}
    assert conditions["Progressing"]["reason"] == "NewRevisionAvailable"
    assert conditions["Available"]["status"] == "True"


async def test_broken_image_misses_the_deadline_and_rolls_back(rollout_cluster: RolloutCluster) -> None:
    client = rollout_cluster.client
    spec = {"progressDeadlineSeconds": 3, "autoRollback": True,
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}
    await client.apply_raw(deployment("api", **spec))
    good = await wait_rolled_out(client, "api", 3, V1)
    async with Availability(client, good).watching() as seen:
        await client.apply_raw(deployment("api", image=BROKEN, **spec))

        async def rolled_back() -> object:
            events, _ = await client.list("Event", "default")
            return [e for e in events if e.spec["reason"] == "RolledBack"
                    and e.spec["involvedObject"]["name"] == "api"]

        events = await eventually(rolled_back, timeout=60, what="a RolledBack event")
        back = await wait_rolled_out(client, "api", 3, V1)
    assert seen.lowest == 3  # maxUnavailable 0: the old replicas stayed available all along
    assert events[0].spec["type"] == "Warning"
    assert "made no progress for 3s" in events[0].spec["message"]
    assert "rolled back to revision 1" in events[0].spec["message"]
    assert back.spec["template"]["spec"]["image"] == V1
    assert back.status["lastRollback"]["fromRevision"] == 2 and back.status["lastRollback"]["toRevision"] == 1
    assert back.status["currentRevision"] == 3  # the good template again, as a new revision (as Kubernetes does)
    broken_hash = next(r["templateHash"] for r in back.status["revisions"]
                       if r["template"]["spec"]["image"] == BROKEN)
    assert broken_hash in seen.hashes  # the broken revision did start a replica before it was given up


async def test_scale_up_and_down(rollout_cluster: RolloutCluster) -> None:
    client = rollout_cluster.client
    await client.apply_raw(deployment("db", replicas=2))
    await wait_rolled_out(client, "db", 2, V1)
    await client.patch("Deployment", "db", {"spec": {"replicas": 5}})
    up = await wait_rolled_out(client, "db", 5, V1)
    await client.patch("Deployment", "db", {"spec": {"replicas": 1}})
    down = await wait_rolled_out(client, "db", 1, V1)
    assert up.status["templateHash"] == down.status["templateHash"]  # scaling is not a new revision
    assert [r["revision"] for r in down.status["revisions"]] == [1]
    live = [w for w in (await client.list("Workload", "default"))[0]
            if controlled_by(w, down) and not w.metadata.deletionTimestamp]
    assert len(live) == 1 and live[0].metadata.labels[TEMPLATE_HASH_LABEL] == down.status["templateHash"]
