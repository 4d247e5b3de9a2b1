"""``ObjectStore.modify(base=…)``: writing against a cached copy never loses an update."""

from __future__ import annotations

from persys.resources import REGISTRY, Resource
from persys.store import ObjectStore


def workload(name: str) -> Resource:
    return REGISTRY.parse({"kind": "Workload", "metadata": {"name": name}, "spec": {"image": "persys/busybox:local"}})


async def test_a_fresh_base_is_written_without_a_read(store: ObjectStore) -> None:
    created = await store.create(workload("fresh"))

    def mark(obj: Resource) -> None:
        obj.status["restarts"] = 1

    written = await store.modify("Workload", "default", "fresh", mark, base=created)
    assert written.status["restarts"] == 1
    assert (await store.get("Workload", "default", "fresh")).resource_version == written.resource_version


async def test_a_stale_base_conflicts_then_the_change_applies_to_what_etcd_holds(store: ObjectStore) -> None:
    stale = await store.create(workload("stale"))
    await store.update_status("Workload", "default", "stale", {"exitCode": 3})

    def mark(obj: Resource) -> None:
        obj.status["restarts"] = 2

    written = await store.modify("Workload", "default", "stale", mark, base=stale)
    assert written.status["restarts"] == 2 and written.status["exitCode"] == 3  # the other writer's field kept


async def test_a_change_that_is_a_no_op_on_a_stale_base_still_reaches_etcd(store: ObjectStore) -> None:
    stale = await store.create(workload("noop"))
    stale.status["restarts"] = 5  # the caller's copy already says what it wants; etcd does not
    assert (await store.get("Workload", "default", "noop")).status.get("restarts") is None

    def mark(obj: Resource) -> None:
        obj.status["restarts"] = 5

    written = await store.modify("Workload", "default", "noop", mark, base=stale)
    assert (await store.get("Workload", "default", "noop")).status["restarts"] == 5 == written.status["restarts"]
