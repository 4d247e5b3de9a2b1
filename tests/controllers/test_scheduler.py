"""The scheduler: fit by resources and nodeSelector, least-allocated spread, FailedScheduling reasons."""

from __future__ import annotations

from typing import Any

import pytest
from controller_support import ManagerFactory, eventually, workload

from persys.controllers.conditions import FINALIZER
from persys.controllers.events import events_for
from persys.controllers.scheduler import NodeUsage, Request, Verdict, assess, choose, failure_message
from persys.errors import NotFound
from persys.resources import REGISTRY, Resource
from persys.resources.model import now_iso
from persys.store import ObjectStore


def node(name: str, *, labels: dict[str, str] | None = None, cpu: str = "2", memory: str = "1Gi",
         ready: bool = True, unschedulable: bool = False) -> Resource:
    obj = REGISTRY.parse({"kind": "Node", "metadata": {"name": name},
                          "spec": {"address": "127.0.0.1:1", "labels": labels or {}, "unschedulable": unschedulable}})
    obj.status = {"allocatable": {"cpu": cpu, "memory": memory}, "lastHeartbeatTime": now_iso(),
                  "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                  "lastTransitionTime": now_iso()}]}
    return obj


async def add_node(store: ObjectStore, obj: Resource) -> None:
    status = obj.status
    await store.create(obj)
    await store.update_status("Node", "", obj.metadata.name, status)


def test_assess_and_message() -> None:
    w = workload("w", resources={"cpu": "500m", "memory": "512Mi"}, nodeSelector={"zone": "a"})
    verdicts = [
        assess(w, node("n1", labels={"zone": "a"}, memory="256Mi"), Request(), 0),
        assess(w, node("n2", labels={"zone": "a"}, memory="1Gi"), Request(0, 768 * 2**20), 1),
        assess(w, node("n3", labels={"zone": "b"}), Request(), 0),
    ]
    assert [v.reasons for v in verdicts] == [("insufficient memory",), ("insufficient memory",),
                                             ("didn't match nodeSelector",)]
    assert failure_message(verdicts) == "0/3 nodes available: 2 insufficient memory, 1 didn't match nodeSelector"
    assert assess(w, node("n4", labels={"zone": "a"}, ready=False), Request(), 0).reasons == ("not ready",)
    assert assess(w, node("n5", labels={"zone": "a"}, unschedulable=True), Request(), 0).reasons == \
        ("unschedulable",)
    assert assess(w, node("n6", labels={"zone": "a"}, cpu="400m"), Request(), 0).reasons == ("insufficient cpu",)
    assert failure_message([]) == "0/0 nodes available: no nodes registered"


def test_choose_least_allocated() -> None:
    verdicts = [Verdict("n1", (), 0.5, 2), Verdict("n2", (), 0.25, 3), Verdict("n3", ("not ready",))]
    assert choose(verdicts) == verdicts[1]
    assert choose([Verdict("b", (), 0.0, 1), Verdict("a", (), 0.0, 1), Verdict("c", (), 0.0, 0)]).node == "c"
    assert choose([Verdict("x", ("unschedulable",))]) is None


def test_node_usage_follows_events_incrementally() -> None:
    usage = NodeUsage()
    a = workload("a", resources={"cpu": "500m", "memory": "64Mi"})
    usage.update(a.key, a)
    assert usage.totals == {}  # unbound: takes no room
    a.spec["nodeName"] = "n1"
    usage.update(a.key, a)
    b = workload("b", nodeName="n1", resources={"cpu": "250m"})
    usage.update(b.key, b)
    assert usage.totals == {"n1": (Request(750, 64 * 2**20), 2)}
    moved = a.copy()
    moved.spec["nodeName"] = "n2"
    usage.update(a.key, moved)  # the old contribution leaves n1, the new one lands on n2
    assert usage.totals == {"n1": (Request(250, 0), 1), "n2": (Request(500, 64 * 2**20), 1)}
    stopped = b.copy()
    stopped.spec["desiredState"] = "Stopped"
    usage.update(b.key, stopped)
    usage.update(a.key, None)  # deleted
    assert usage.totals == {}


async def bound_nodes(store: ObjectStore, names: list[str]) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for name in names:
        obj = await store.get("Workload", "default", name)
        if not obj.spec.get("nodeName"):
            return None
        out[name] = obj.spec["nodeName"]
    return out


async def test_binds_by_fit_and_selector(store: ObjectStore, controllers: ManagerFactory) -> None:
    await add_node(store, node("small", labels={"zone": "a"}, memory="256Mi"))
    await add_node(store, node("big", labels={"zone": "a"}, memory="4Gi"))
    await add_node(store, node("other", labels={"zone": "b"}, memory="8Gi"))
    await add_node(store, node("down", labels={"zone": "a"}, memory="8Gi", ready=False))
    await controllers(controllers=["scheduler"])
    await store.create(workload("fits-big", resources={"memory": "1Gi"}, nodeSelector={"zone": "a"}))
    await store.create(workload("zone-b", nodeSelector={"zone": "b"}))
    await store.create(workload("by-host", nodeSelector={"persys.dev/hostname": "small"}))
    placed = await eventually(lambda: bound_nodes(store, ["fits-big", "zone-b", "by-host"]), what="binding")
    assert placed == {"fits-big": "big", "zone-b": "other", "by-host": "small"}
    obj = await store.get("Workload", "default", "fits-big")
    assert obj.status["phase"] == "Scheduled"
    assert {"type": "Scheduled", "status": "True"}.items() <= obj.status["conditions"][0].items()
    events = await events_for(store, obj, "Scheduled")
    assert events and events[0].spec["message"] == "Successfully assigned default/fits-big to big"


async def test_spreads_by_least_allocation(store: ObjectStore, controllers: ManagerFactory) -> None:
    for name in ("n1", "n2", "n3"):
        await add_node(store, node(name, cpu="4", memory="4Gi"))
    await controllers(controllers=["scheduler"])
    names = [f"w{i}" for i in range(6)]
    for name in names:
        await store.create(workload(name, resources={"cpu": "500m", "memory": "256Mi"}))
    placed = await eventually(lambda: bound_nodes(store, names), what="binding")
    counts = {n: list(placed.values()).count(n) for n in ("n1", "n2", "n3")}
    assert counts == {"n1": 2, "n2": 2, "n3": 2}


async def test_failed_scheduling_names_reasons_and_retries_when_nodes_change(
        store: ObjectStore, controllers: ManagerFactory) -> None:
    await add_node(store, node("n1", labels={"zone": "a"}, memory="256Mi"))
    await add_node(store, node("n2", labels={"zone": "a"}, memory="512Mi"))
    await add_node(store, node("n3", labels={"zone": "b"}, memory="8Gi"))
    await controllers(controllers=["scheduler"])
    wanted = workload("hungry", resources={"memory": "1Gi"}, nodeSelector={"zone": "a"})
    await store.create(wanted)
    message = "0/3 nodes available: 2 insufficient memory, 1 didn't match nodeSelector"

    async def failed() -> Any:
        obj = await store.get("Workload", "default", "hungry")
        found = await events_for(store, obj, "FailedScheduling")
        return found and obj

    obj = await eventually(failed, what="FailedScheduling")
    event = (await events_for(store, obj, "FailedScheduling"))[0]
    assert event.spec["message"] == message and event.spec["type"] == "Warning"
    assert obj.status["phase"] == "Pending" and obj.status["message"] == message
    await add_node(store, node("n4", labels={"zone": "a"}, memory="2Gi"))
    placed = await eventually(lambda: bound_nodes(store, ["hungry"]), what="binding after a node joined")
    assert placed == {"hungry": "n4"}


async def test_reapplying_a_manifest_keeps_the_binding_and_the_finalizer(store: ObjectStore) -> None:
    await store.create(workload("bound"))
    await store.modify("Workload", "default", "bound",
                       lambda o: (o.spec.update(nodeName="n1"), o.metadata.finalizers.append("persys.dev/container")))
    before = await store.get("Workload", "default", "bound")
    after = await store.replace(workload("bound"))  # what `persys apply` of the unchanged manifest does
    assert after.metadata.resourceVersion == before.metadata.resourceVersion  # unchanged
    assert after.spec["nodeName"] == "n1" and after.metadata.finalizers == ["persys.dev/container"]
    await store.delete("Workload", "default", "bound")
    await store.replace(workload("bound"))  # once deleting, a write without the finalizer releases it
    with pytest.raises(NotFound):
        await store.get("Workload", "default", "bound")


async def test_concurrent_bindings_never_overcommit_and_add_the_finalizer(
        store: ObjectStore, controllers: ManagerFactory) -> None:
    await add_node(store, node("n1", cpu="1500m", memory="4Gi"))
    await add_node(store, node("n2", cpu="1500m", memory="4Gi"))
    names = [f"w{i}" for i in range(8)]  # room for 6: three on each node
    for name in names:
        await store.create(workload(name, resources={"cpu": "500m"}))
    await controllers(controllers=["scheduler"])  # all eight at once, to several workers

    async def settled() -> list[Resource] | None:
        objs = [await store.get("Workload", "default", name) for name in names]
        bound = [o for o in objs if o.spec.get("nodeName")]
        failed = [o for o in objs if not o.spec.get("nodeName") and o.status.get("phase") == "Pending"
                  and "insufficient cpu" in str(o.status.get("message"))]
        return objs if len(bound) == 6 and len(failed) == 2 else None

    objs = await eventually(settled, what="six bound, two unschedulable")
    placed = [o.spec["nodeName"] for o in objs if o.spec.get("nodeName")]
    assert placed.count("n1") == 3 and placed.count("n2") == 3
    assert all(FINALIZER in o.metadata.finalizers for o in objs if o.spec.get("nodeName"))
    assert all(not o.metadata.finalizers for o in objs if not o.spec.get("nodeName"))  # nothing to guard yet
