"""Status writes racing other writers against a real etcd: without a resourceVersion they retry and land;
with one, exactly the CAS winner lands and the others get Conflict."""

from __future__ import annotations

import asyncio

import pytest

from persys.errors import Conflict
from persys.resources import Resource
from persys.store import ObjectStore
from tests.support.workloads import workload

WRITERS = 6  # fewer contenders than update_status's attempts: even a writer losing every round lands


async def test_concurrent_status_writers_without_version_all_land(store: ObjectStore) -> None:
    created = await store.create(workload("web"))

    async def write(i: int) -> Resource:
        return await store.update_status("Workload", "default", "web", {"phase": "Running", "restarts": i})

    # all read the same revision before any writes: all but one lose the first CAS and must retry
    results = await asyncio.gather(*(write(i) for i in range(WRITERS)))
    versions = {r.resource_version for r in results}
    assert len(versions) == WRITERS, "each writer committed its own revision"
    final = await store.get("Workload", "default", "web")
    assert final.resource_version == max(versions) > created.resource_version
    last = next(r for r in results if r.resource_version == final.resource_version)
    assert final.status == last.status and final.metadata.generation == 1


async def test_status_writer_racing_spec_writer_keeps_both(store: ObjectStore) -> None:
    await store.create(workload("web"))

    def relabel(obj: Resource) -> None:
        obj.metadata.labels["tier"] = "front"
        obj.spec["image"] = "other"

    await asyncio.gather(store.modify("Workload", "default", "web", relabel),
                         *(store.update_status("Workload", "default", "web", {"phase": "Pending", "restarts": i})
                           for i in range(WRITERS - 1)))
    final = await store.get("Workload", "default", "web")
    assert final.spec["image"] == "other" and final.metadata.labels == {"tier": "front"}
    assert final.metadata.generation == 2 and final.status["phase"] == "Pending"


async def test_concurrent_status_writers_with_version_only_one_lands(store: ObjectStore) -> None:
    created = await store.create(workload("web"))
    version = created.metadata.resourceVersion

    async def write(i: int) -> Resource | Conflict:
        try:
            return await store.update_status("Workload", "default", "web", {"restarts": i},
                                             resource_version=version)
        except Conflict as e:
            return e

    results = await asyncio.gather(*(write(i) for i in range(WRITERS)))
    landed = [r for r in results if isinstance(r, Resource)]
    assert len(landed) == 1 and sum(isinstance(r, Conflict) for r in results) == WRITERS - 1
    assert (await store.get("Workload", "default", "web")).status == landed[0].status


async def test_status_write_with_stale_version_is_refused(store: ObjectStore) -> None:
    created = await store.create(workload("web"))
    await store.update_status("Workload", "default", "web", {"phase": "Running"})
    with pytest.raises(Conflict):
        await store.update_status("Workload", "default", "web", {"phase": "Failed"},
                                  resource_version=created.metadata.resourceVersion)
    assert (await store.get("Workload", "default", "web")).status == {"phase": "Running"}


async def test_decoded_objects_share_nothing(store: ObjectStore) -> None:
    """Objects decoded without a copy still never alias each other or what the store holds."""
    await store.create(workload("web"))
    await store.update_status("Workload", "default", "web", {"conditions": [{"type": "Ready"}]})
    first = await store.get("Workload", "default", "web")
    first.spec["image"] = "changed"
    first.status["conditions"][0]["type"] = "changed"
    copied = first.copy()
    copied.status["conditions"].append({"type": "extra"})
    assert first.status["conditions"] == [{"type": "changed"}]
    again = await store.get("Workload", "default", "web")
    assert again.spec["image"] == "persys/busybox:local" and again.status["conditions"] == [{"type": "Ready"}]
