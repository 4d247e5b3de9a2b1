"""The object store against a real etcd: CAS, generation, finalizers, watch, compaction."""

from __future__ import annotations

import asyncio

import pytest

from persys.errors import Conflict, Gone, NotFound, StoreUnavailable
from persys.resources import REGISTRY, Resource, Selector
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer
from tests.support.workloads import workload


async def test_create_get_list(store: ObjectStore) -> None:
    created = await store.create(workload("web", labels={"app": "web"}))
    assert created.metadata.uid and created.metadata.generation == 1
    got = await store.get("Workload", "default", "web")
    assert got.spec["image"] == "persys/busybox:local"
    assert got.metadata.resourceVersion == created.metadata.resourceVersion
    await store.create(workload("db", labels={"app": "db"}))
    items, revision = await store.list("workloads", "default", Selector("app=web"))
    assert [o.metadata.name for o in items] == ["web"]
    assert revision >= int(created.metadata.resourceVersion)
    with pytest.raises(Conflict):
        await store.create(workload("web"))
    with pytest.raises(NotFound):
        await store.get("wl", "default", "nope")


async def test_create_or_get_creates_or_reads_in_one_round_trip(store: ObjectStore, etcd: Etcd) -> None:
    before = await etcd.revision()
    created, made = await store.create_or_get(workload("one", labels={"v": "1"}))
    assert made and created.metadata.uid and int(created.metadata.resourceVersion) == before + 1
    found, made = await store.create_or_get(workload("one", labels={"v": "2"}))
    assert not made and await etcd.revision() == before + 1  # nothing written the second time
    assert (found.metadata.uid, found.metadata.labels, found.metadata.resourceVersion) == (
        created.metadata.uid, {"v": "1"}, created.metadata.resourceVersion)
    with pytest.raises(ValueError, match="lease"):
        await store.create_or_get(REGISTRY.parse({"kind": "Event", "metadata": {"name": "e", "namespace": "default"},
                                                  "spec": {"involvedObject": {"kind": "Workload", "name": "one"},
                                                           "reason": "R", "message": "m", "type": "Normal"}}))


async def test_generation_and_cas(store: ObjectStore) -> None:
    created = await store.create(workload("web"))
    same = await store.replace(workload("web"))
    assert same.metadata.resourceVersion == created.metadata.resourceVersion
    changed = await store.replace(workload("web", image="other"))
    assert changed.metadata.generation == 2
    stale = workload("web", image="third")
    stale.metadata.resourceVersion = created.metadata.resourceVersion
    with pytest.raises(Conflict):
        await store.replace(stale)
    status = await store.update_status("Workload", "default", "web", {"phase": "Running"})
    assert status.metadata.generation == 2 and status.status["phase"] == "Running"
    relabelled = workload("web", image="other", labels={"tier": "front"})
    after = await store.replace(relabelled)
    assert after.metadata.generation == 2 and after.status["phase"] == "Running"


async def test_finalizers(store: ObjectStore) -> None:
    obj = workload("web")
    obj.metadata.finalizers = ["persys.dev/container"]
    await store.create(obj)
    marked = await store.delete("Workload", "default", "web")
    assert marked.metadata.deletionTimestamp
    await store.get("Workload", "default", "web")
    await store.modify("Workload", "default", "web", lambda o: o.metadata.finalizers.clear())
    with pytest.raises(NotFound):
        await store.get("Workload", "default", "web")


async def test_watch_in_order_and_resume(store: ObjectStore) -> None:
    _, revision = await store.list("Workload")
    events: list[tuple[str, str]] = []

    async def follow(start: int, count: int) -> None:
        async for event in store.watch("Workload", revision=start):
            events.append((event.type, event.object.metadata.name))
            if len(events) >= count:
                return

    task = asyncio.create_task(follow(revision, 3))
    await asyncio.sleep(0.2)
    created = await store.create(workload("a"))
    await store.replace(workload("a", image="b"))
    await store.delete("Workload", "default", "a")
    await asyncio.wait_for(task, 10)
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    events.clear()
    await asyncio.wait_for(follow(int(created.metadata.resourceVersion), 2), 10)
    assert events == [("MODIFIED", "a"), ("DELETED", "a")]


async def test_watch_compacted_is_gone(store: ObjectStore, etcd: Etcd) -> None:
    first = await store.create(workload("a"))
    await store.replace(workload("a", image="b"))
    await etcd.compact(await etcd.revision())
    with pytest.raises(Gone):
        async for _ in store.watch("Workload", revision=int(first.metadata.resourceVersion) - 1):
            break


async def test_etcd_down_fails_fast_then_recovers(own_etcd: EtcdServer) -> None:
    await own_etcd.start()
    store = ObjectStore(Etcd(own_etcd.url, timeout=2), REGISTRY)
    await store.create(workload("a"))
    own_etcd.stop()
    with pytest.raises(StoreUnavailable, match="etcd unavailable"):
        await store.get("Workload", "default", "a")
    await own_etcd.start()
    for _ in range(50):
        try:
            assert (await store.get("Workload", "default", "a")).metadata.name == "a"
            break
        except StoreUnavailable:
            await asyncio.sleep(0.2)
    else:
        pytest.fail("store did not recover after etcd came back")
    await store.etcd.close()


def event(name: str) -> Resource:
    return REGISTRY.parse({"kind": "Event", "metadata": {"name": name},
                           "spec": {"involvedObject": {"kind": "Workload", "name": "web"}, "reason": "Test"}})


async def test_events_share_one_lease_and_keep_it_when_bumped(store: ObjectStore, etcd: Etcd) -> None:
    for name in ("e1", "e2"):
        await store.create(event(name))
    first, second = await etcd.get("/persys/registry/events/default/e1"), \
        await etcd.get("/persys/registry/events/default/e2")
    assert first is not None and second is not None
    assert first.lease and first.lease == second.lease  # one lease for both, not one each
    await store.modify("Event", "default", "e1", lambda e: e.spec.update(count=2))
    bumped = await etcd.get("/persys/registry/events/default/e1")
    assert bumped is not None and bumped.lease == first.lease  # a rewrite does not detach it from its lease
    plain = await store.create(workload("web"))
    kv = await etcd.get(f"/persys/registry/workloads/default/{plain.metadata.name}")
    assert kv is not None and not kv.lease  # kinds without a TTL never get one


async def test_a_revoked_shared_lease_is_replaced(store: ObjectStore, etcd: Etcd) -> None:
    await store.create(event("e1"))
    kv = await etcd.get("/persys/registry/events/default/e1")
    assert kv is not None and kv.lease
    await etcd.revoke_lease(kv.lease)  # gone under the store's feet: e1 goes with it
    assert await etcd.get("/persys/registry/events/default/e1") is None
    await store.create(event("e2"))
    fresh = await etcd.get("/persys/registry/events/default/e2")
    assert fresh is not None and fresh.lease and fresh.lease != kv.lease
