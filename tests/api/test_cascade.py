"""Owner references and cascading deletion through the API: validation, apply and patch keep them,
``DELETE ?propagationPolicy=`` sets the collector's finalizer, and with the collector running the dependents go."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from persys.client import ApiClient
from persys.controllers.gc import GarbageCollector
from persys.errors import Invalid, NotFound
from persys.resources import Resource
from persys.resources.model import FOREGROUND_DELETION, ORPHAN_FINALIZER
from persys.runtime import Manager
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.cluster import RunningApi, raw_request
from tests.support.eventually import eventually
from tests.support.workloads import manifest

NS = "/apis/persys.dev/v1/namespaces/default"


def ref(owner: Resource, **flags: bool) -> dict[str, Any]:
    return {"apiVersion": owner.apiVersion, "kind": owner.kind, "name": owner.metadata.name,
            "uid": owner.metadata.uid, **flags}


def owned(name: str, *refs: dict[str, Any]) -> dict[str, Any]:
    document = manifest(name)
    document["metadata"]["ownerReferences"] = list(refs)
    return document


async def gone(client: ApiClient, name: str) -> bool:
    try:
        await client.get("workload", name)
    except NotFound:
        return True
    return False


@pytest.fixture
async def collector(etcd_server: EtcdServer) -> AsyncIterator[Manager]:
    """The garbage collector alone, in a manager of its own."""
    manager = Manager(Etcd(etcd_server.url), component="gc", lease_ttl=2, listen=None, owns_etcd=True)
    manager.add(GarbageCollector())
    task = asyncio.create_task(manager.run(), name="gc-manager")
    await eventually(lambda: manager.is_leader, what="gc leading")
    yield manager
    manager.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_owner_references_are_kept_by_apply_and_patch(api: RunningApi) -> None:
    async with api.client() as client:
        owner, _ = await client.apply_raw(manifest("owner"))
        document = owned("kid", ref(owner, controller=True, blockOwnerDeletion=True))
        kid, outcome = await client.apply_raw(document)
        assert outcome == "created"
        assert [r.to_dict() for r in kid.metadata.ownerReferences] == document["metadata"]["ownerReferences"]
        assert (await client.apply_raw(document))[1] == "unchanged"
        patched = await client.patch("workload", "kid", {"metadata": {"labels": {"tier": "x"}}})
        assert patched.metadata.ownerReferences == kid.metadata.ownerReferences
        released = await client.patch("workload", "kid", {"metadata": {"ownerReferences": None}})
        assert released.metadata.ownerReferences == []
        again, outcome = await client.apply_raw(document)  # an apply says who owns it, as it says the labels
        assert outcome == "configured" and again.metadata.ownerReferences == kid.metadata.ownerReferences


async def test_invalid_owner_references_are_422_naming_the_field(api: RunningApi) -> None:
    owner = {"apiVersion": "persys.dev/v1", "kind": "Workload", "name": "a", "uid": "u-1", "controller": True}
    async with api.client() as client:
        with pytest.raises(Invalid) as caught:
            await client.apply_raw(owned("kid", owner, {**owner, "name": "b", "uid": "u-2"}))
        assert any(c.field == "metadata.ownerReferences" and "at most one" in c.message
                   for c in caught.value.causes)
        with pytest.raises(Invalid) as caught:
            await client.apply_raw(owned("kid", {**owner, "namespace": "other"}))
        assert [c.field for c in caught.value.causes] == ["metadata.ownerReferences[0].namespace"]
        with pytest.raises(NotFound):
            await client.get("workload", "kid")


async def test_propagation_policy_sets_the_collectors_finalizer(api: RunningApi) -> None:
    async with api.client() as client:
        for name in ("fg", "orphan", "bg", "plain"):
            await client.apply_raw(manifest(name))
        status, body, _ = await raw_request(api, "DELETE", f"{NS}/workloads/fg?propagationPolicy=Foreground")
        marked = json.loads(body)["metadata"]
        assert status == 200 and marked["finalizers"] == [FOREGROUND_DELETION] and marked["deletionTimestamp"]
        status, body, _ = await raw_request(api, "DELETE", f"{NS}/workloads/orphan?propagationPolicy=Orphan")
        assert status == 200 and json.loads(body)["metadata"]["finalizers"] == [ORPHAN_FINALIZER]
        status, _, _ = await raw_request(api, "DELETE", f"{NS}/workloads/bg?propagationPolicy=Background")
        assert status == 200 and await gone(client, "bg")
        status, _, _ = await raw_request(api, "DELETE", f"{NS}/workloads/plain")
        assert status == 200 and await gone(client, "plain")

        # again without a policy: the first one holds; with another policy: it replaces the first
        status, body, _ = await raw_request(api, "DELETE", f"{NS}/workloads/fg")
        assert status == 200 and json.loads(body)["metadata"]["finalizers"] == [FOREGROUND_DELETION]
        status, body, _ = await raw_request(api, "DELETE", f"{NS}/workloads/fg?propagationPolicy=Orphan")
        assert status == 200 and json.loads(body)["metadata"]["finalizers"] == [ORPHAN_FINALIZER]
        status, _, _ = await raw_request(api, "DELETE", f"{NS}/workloads/fg?propagationPolicy=Background")
        assert status == 200 and await gone(client, "fg")


async def test_bad_propagation_policy_is_400_and_deletes_nothing(api: RunningApi) -> None:
    async with api.client() as client:
        await client.apply_raw(manifest("web"))
        status, body, _ = await raw_request(api, "DELETE", f"{NS}/workloads/web?propagationPolicy=Cascade")
        assert status == 400 and "Background, Foreground, Orphan" in json.loads(body)["message"]
        assert not await gone(client, "web")


async def test_cascades_with_the_collector_running(api: RunningApi, collector: Manager) -> None:
    async with api.client() as client:
        owner, _ = await client.apply_raw(manifest("owner"))
        await client.apply_raw(owned("blocker", ref(owner, blockOwnerDeletion=True)))
        status, _, _ = await raw_request(api, "DELETE", f"{NS}/workloads/owner?propagationPolicy=Foreground")
        assert status == 200
        await eventually(lambda: _all_gone(client, "blocker", "owner"), what="foreground cascade")

        owner, _ = await client.apply_raw(manifest("owner"))
        await client.apply_raw(owned("kept", ref(owner)))
        await raw_request(api, "DELETE", f"{NS}/workloads/owner?propagationPolicy=Orphan")
        await eventually(lambda: gone(client, "owner"), what="orphaning owner gone")
        assert (await client.get("workload", "kept")).metadata.ownerReferences == []

        owner, _ = await client.apply_raw(manifest("owner"))
        await client.apply_raw(owned("kid", ref(owner)))
        await raw_request(api, "DELETE", f"{NS}/workloads/owner")
        await eventually(lambda: gone(client, "kid"), what="background cascade")


async def _all_gone(client: ApiClient, *names: str) -> bool:
    return all([await gone(client, name) for name in names])
