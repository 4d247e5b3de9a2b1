"""The monitor: node heartbeats → NotReady → Unknown → rescheduled; a returning node leaves no duplicate."""

from __future__ import annotations

import asyncio
import time

from controller_support import ManagerFactory, NodeFactory, eventually, workload

from persys.controllers.conditions import get_condition
from persys.controllers.events import events_for
from persys.controllers.monitor import Monitor
from persys.resources import Resource
from persys.resources.model import ObjectMeta
from persys.runtime.clock import to_iso
from persys.store import ObjectStore


async def node_status(store: ObjectStore, name: str) -> str:
    node = await store.get("Node", "", name)
    return str((get_condition(node.status, "Ready") or {}).get("status"))


async def test_node_lost_then_rescheduled_and_no_duplicate_when_it_returns(
        store: ObjectStore, hollow_node: NodeFactory, controllers: ManagerFactory) -> None:
    a = await hollow_node("a", labels={"pool": "x"})
    await controllers(heartbeat_timeout=1.0, node_lost_timeout=1.5)
    await store.create(workload("web", nodeSelector={"pool": "x"}))

    async def running_on(node: str) -> Resource | None:
        obj = await store.get("Workload", "default", "web")
        ok = obj.spec.get("nodeName") == node and obj.status.get("containerState") == "running"
        return obj if ok else None

    obj = await eventually(lambda: running_on("a"), what="running on a")
    uid = obj.metadata.uid
    b = await hollow_node("b", labels={"pool": "x"})

    a.beating.clear()  # node a goes silent (its agent keeps running the container)

    async def unknown() -> bool:
        w = await store.get("Workload", "default", "web")
        return await node_status(store, "a") == "False" and w.status.get("phase") in ("Unknown", "Pending")

    await eventually(unknown, what="node a NotReady, workload Unknown")
    node_a = await store.get("Node", "", "a")
    assert (await events_for(store, node_a, "NodeNotReady"))[0].spec["type"] == "Warning"

    moved = await eventually(lambda: running_on("b"), what="rescheduled to b")
    assert (await events_for(store, moved, "Rescheduled"))
    assert (await b.runtime.get(uid)).state == "running"
    assert uid in {s.uid for s in await a.runtime.list()}  # a is unreachable in spirit: its copy still runs

    a.beating.set()  # node a comes back
    await eventually(lambda: _is(node_status(store, "a"), "True"), what="node a Ready again")

    async def stray_removed() -> bool:
        return uid not in {s.uid for s in await a.runtime.list()}

    await eventually(stray_removed, what="the stray copy on a removed")
    await asyncio.sleep(0.5)
    final = await store.get("Workload", "default", "web")
    assert final.spec["nodeName"] == "b" and final.status["containerState"] == "running"
    assert (await b.runtime.get(uid)).state == "running"


async def test_unscheduled_workloads_are_not_touched_by_node_loss(
        store: ObjectStore, hollow_node: NodeFactory, controllers: ManagerFactory) -> None:
    a = await hollow_node("solo")
    await controllers(heartbeat_timeout=1.0, node_lost_timeout=1.0)
    a.beating.clear()
    await eventually(lambda: _is(node_status(store, "solo"), "False"), what="NotReady")
    await store.create(workload("waiting"))

    async def failed_scheduling() -> bool:
        obj = await store.get("Workload", "default", "waiting")
        return bool(await events_for(store, obj, "FailedScheduling"))

    await eventually(failed_scheduling, what="FailedScheduling on a NotReady-only cluster")
    obj = await store.get("Workload", "default", "waiting")
    assert obj.status["message"] == "0/1 nodes available: 1 not ready"


async def _is(value: object, expected: str) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_a_cache_that_lags_behind_a_heartbeat_does_not_make_the_node_not_ready(
        store: ObjectStore, controllers: ManagerFactory) -> None:
    manager = await controllers(controllers=["monitor"])
    monitor = next(c for c in manager.controllers if isinstance(c, Monitor))
    await asyncio.wait_for(manager.leading.wait(), 10)
    await store.create(Resource(kind="Node", metadata=ObjectMeta(name="busy"), spec={"address": "127.0.0.1:9"}))
    now = time.time()
    ready = {"conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady"}]}
    await store.update_status("Node", "", "busy", {"lastHeartbeatTime": to_iso(now), **ready})
    seen = await store.get("Node", "", "busy")
    seen.status["lastHeartbeatTime"] = to_iso(now - 100)  # what a cache lagging behind etcd holds
    await monitor._mark_not_ready(seen, 100)
    assert await node_status(store, "busy") == "True"
    assert not await events_for(store, seen, "NodeNotReady")
