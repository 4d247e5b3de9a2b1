"""The scheduler spreads the workloads of one owner (a Deployment's replicas) over the nodes.

``choose`` row by row: siblings (workloads the same controller owns on a node) come before how
allocated a node is; then ``NodeUsage`` counting them from events; then the scheduler placing six
replicas of one owner on three nodes already loaded unevenly by others.
"""

from __future__ import annotations

import pytest
from controller_support import ManagerFactory, eventually, workload
from test_scheduler import add_node, bound_nodes, node

from persys.controllers.scheduler import NodeUsage, Verdict, choose, owner_of
from persys.resources import Resource
from persys.resources.model import OwnerReference
from persys.store import ObjectStore

CHOOSE = [
    # (why, verdicts as (node, reasons, score, bound, siblings), chosen)
    ("fewest siblings wins over least allocated",
     [("a", (), 0.1, 0, 1), ("b", (), 0.9, 5, 0)], "b"),
    ("equal siblings: least allocated", [("a", (), 0.6, 1, 1), ("b", (), 0.2, 3, 1)], "b"),
    ("equal siblings and allocation: fewest workloads", [("a", (), 0.2, 2, 0), ("b", (), 0.2, 1, 0)], "b"),
    ("all equal: by name", [("b", (), 0.0, 0, 0), ("a", (), 0.0, 0, 0)], "a"),
    ("a node that does not fit is never chosen, however few siblings",
     [("a", ("insufficient cpu",), 0.0, 0, 0), ("b", (), 0.9, 9, 3)], "b"),
    ("no owner (siblings 0 everywhere): least allocated as before", [("a", (), 0.5, 0, 0), ("b", (), 0.4, 9, 0)],
     "b"),
]


@pytest.mark.parametrize(("why", "verdicts", "chosen"), CHOOSE, ids=[row[0] for row in CHOOSE])
def test_choose(why: str, verdicts: list[tuple[str, tuple[str, ...], float, int, int]], chosen: str) -> None:
    best = choose([Verdict(*v) for v in verdicts])
    assert best is not None and best.node == chosen


def owned(name: str, owner_uid: str, **spec: object) -> Resource:
    obj = workload(name, **spec)
    obj.metadata.ownerReferences = [OwnerReference(apiVersion="persys.dev/v1", kind="Deployment", name="d",
                                                   uid=owner_uid, controller=True)]
    return obj


def test_owner_of_and_usage_counts_siblings() -> None:
    assert owner_of(owned("x", "u1")) == "u1" and owner_of(workload("y")) == ""
    usage = NodeUsage()
    a, b, c = owned("a", "u1", nodeName="n1"), owned("b", "u1", nodeName="n1"), owned("c", "u2", nodeName="n2")
    for obj in (a, b, c, workload("free", nodeName="n2")):
        usage.update(obj.key, obj)
    assert usage.siblings == {("u1", "n1"): 2, ("u2", "n2"): 1}
    moved = b.copy()
    moved.spec["nodeName"] = "n2"
    usage.update(b.key, moved)
    usage.update(c.key, None)
    assert usage.siblings == {("u1", "n1"): 1, ("u1", "n2"): 1}


async def test_replicas_of_one_owner_spread_over_the_nodes(store: ObjectStore, controllers: ManagerFactory) -> None:
    for name in ("n1", "n2", "n3"):
        await add_node(store, node(name, cpu="8", memory="8Gi"))
    for i in range(3):  # others load n1 most, n3 least: least-allocated alone would stack the replicas on n3
        await store.create(workload(f"other{i}", nodeName="n1", resources={"cpu": "2"}))
    await store.create(workload("other3", nodeName="n2", resources={"cpu": "2"}))
    await controllers(controllers=["scheduler"])
    names = [f"r{i}" for i in range(6)]
    for name in names:
        await store.create(owned(name, "deployment-uid", resources={"cpu": "100m"}))
    placed = await eventually(lambda: bound_nodes(store, names), what="binding")
    assert sorted(placed.values()) == ["n1", "n1", "n2", "n2", "n3", "n3"]
