"""The rolling update as a table: each row a situation and what ``plan`` must do about it.

Replicas are written ``name:hash:state``: state ``a`` available, ``r`` ready (not yet available),
``u`` unready, ``p`` unscheduled (pending). The target template hash is always ``new``.
"""

from __future__ import annotations

import pytest

from persys.deployments.rollout import Counts, Plan, Replica, deletion_order, is_ready, next_ready_in, plan, replica_of
from persys.resources.deployments import TEMPLATE_HASH_LABEL
from persys.runtime.clock import to_iso
from tests.support.workloads import workload


def replicas(text: str) -> list[Replica]:
    out = []
    for i, item in enumerate(text.split()):
        name, hash_, state = item.split(":")
        out.append(Replica(name, hash_, scheduled=state != "p", ready=state in "ar", available=state == "a",
                           created=f"2026-01-01T00:00:{i:02d}Z"))
    return out


ROWS = [
    # (why, replicas, maxSurge, maxUnavailable, current, expected create, expected deletions)
    ("nothing yet: create them all", 3, 1, 0, "", 3, ()),
    ("steady: nothing to do", 3, 1, 0, "a:new:a b:new:a c:new:a", 0, ()),
    ("scale up", 5, 1, 0, "a:new:a b:new:a c:new:a", 2, ()),
    ("scale down: unscheduled, unready, then newest go first", 2, 1, 0, "a:new:a b:new:u c:new:a d:new:p", 0,
     ("d", "b")),
    ("scale down by one: the newest available goes", 2, 1, 0, "a:new:a b:new:a c:new:a", 0, ("c",)),
    ("rollout starts, surge 1, unavailable 0: one new, no old goes", 3, 1, 0, "a:old:a b:old:a c:old:a", 1, ()),
    ("the new one is unavailable: nothing more moves", 3, 1, 0, "a:old:a b:old:a c:old:a d:new:u", 0, ()),
    ("the new one became available: one old goes", 3, 1, 0, "a:old:a b:old:a c:old:a d:new:a", 0, ("c",)),
    ("after that: the next new one", 3, 1, 0, "a:old:a b:old:a d:new:a", 1, ()),
    ("surge 0, unavailable 1: one old goes first, nothing created", 3, 0, 1, "a:old:a b:old:a c:old:a", 0, ("c",)),
    ("surge 0, unavailable 1: then its replacement", 3, 0, 1, "a:old:a b:old:a", 1, ()),
    ("unavailable old replicas go first, within the budget", 3, 1, 1, "a:old:u b:old:a c:old:a", 1, ("a",)),
    ("broken new replicas: no old one is taken down", 3, 1, 0, "a:old:a b:old:a c:old:a d:new:u", 0, ()),
    ("broken new with unavailable 1: one old may go, as maxUnavailable allows, no more", 4, 1, 1,
     "a:old:a b:old:a c:old:a e:old:a d:new:u", 0, ("e",)),
    ("... and then nothing more while the new ones stay broken", 4, 1, 1,
     "a:old:a b:old:a c:old:a d:new:u f:new:u", 0, ()),
    ("new ready but not yet available (minReadySeconds): old ones stay", 3, 1, 0,
     "a:old:a b:old:a c:old:a d:new:r", 0, ()),
    ("rollout done but one old left", 3, 1, 0, "a:old:a d:new:a e:new:a f:new:a", 0, ("a",)),
    ("scaled down mid-rollout: surplus new replicas go first", 1, 1, 0, "a:old:a d:new:a e:new:u", 0, ("e",)),
    ("scaled to zero", 0, 1, 0, "a:new:a b:new:a", 0, ("b", "a")),
    ("large surge: create up to replicas + surge", 4, 2, 1, "a:old:a b:old:a c:old:a e:old:a", 2, ("e",)),
]


@pytest.mark.parametrize(("why", "count", "surge", "unavailable", "current", "create", "delete"), ROWS,
                         ids=[row[0] for row in ROWS])
def test_plan(why: str, count: int, surge: int, unavailable: int, current: str, create: int,
              delete: tuple[str, ...]) -> None:
    assert plan(count, surge, unavailable, "new", replicas(current)) == Plan(create, delete)


def simulate(count: int, surge: int, unavailable: int, start: str) -> int:
    """Run plans to the end, every new replica becoming available one step after it is created;
    the fewest replicas available at any point (never below count - unavailable is the promise)."""
    current = replicas(start)
    lowest, serial = count, 0
    for _ in range(100):
        todo = plan(count, surge, unavailable, "new", current)
        if todo == Plan() and all(r.available for r in current):
            break
        current = [r for r in current if r.name not in todo.delete]
        lowest = min(lowest, sum(1 for r in current if r.available))
        current = [Replica(r.name, r.hash, ready=True, available=True, created=r.created) for r in current]
        for _ in range(todo.create):
            serial += 1
            current.append(Replica(f"n{serial}", "new", created=f"2026-01-02T00:00:{serial:02d}Z"))
    assert all(r.hash == "new" for r in current) and len(current) == count
    return lowest


@pytest.mark.parametrize(("count", "surge", "unavailable"), [(3, 1, 0), (3, 0, 1), (10, 3, 2), (100, 25, 25)])
def test_a_whole_rollout_never_goes_below_the_minimum(count: int, surge: int, unavailable: int) -> None:
    start = " ".join(f"o{i}:old:a" for i in range(count))
    assert simulate(count, surge, unavailable, start) >= count - unavailable


def test_deletion_order() -> None:
    order = deletion_order(replicas("a:x:a b:x:r c:x:u d:x:p e:x:a"))
    assert [r.name for r in order] == ["d", "c", "b", "e", "a"]


def test_counts() -> None:
    counts = Counts.of("new", replicas("a:old:a b:new:a c:new:r d:new:u"))
    assert counts == Counts(replicas=4, updated=3, ready=3, available=2, updated_available=1)
    assert not counts.complete(3)
    assert Counts.of("new", replicas("b:new:a c:new:a")).complete(2)


READINESS = [
    # (status, ready)
    ({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}, True),
    ({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}, False),  # readiness probe says no
    ({"phase": "Running"}, True),  # no Ready condition at all: Running is ready
    ({"phase": "Running", "conditions": [{"type": "Scheduled", "status": "True"}]}, True),
    ({"phase": "Pending"}, False),
    ({"phase": "ImagePullBackOff", "conditions": [{"type": "Ready", "status": "False"}]}, False),
    ({}, False),
]


@pytest.mark.parametrize(("status", "ready"), READINESS)
def test_is_ready(status: dict[str, object], ready: bool) -> None:
    assert is_ready(workload("w", status=status))[0] is ready


def test_available_after_min_ready_seconds() -> None:
    since = 1_800_000_000.0
    obj = workload("w", labels={TEMPLATE_HASH_LABEL: "h1"}, status={
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": to_iso(since)}]})
    assert replica_of(obj, since + 4, 5).available is False
    assert replica_of(obj, since + 5, 5).available is True
    assert replica_of(obj, since, 0).available is True
    replica = replica_of(obj, since + 4, 5)
    assert replica.hash == "h1" and replica.ready
    assert next_ready_in([replica], since + 4, 5) == pytest.approx(1.0)
    assert next_ready_in([replica_of(obj, since + 9, 5)], since + 9, 5) is None
