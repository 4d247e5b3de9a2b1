"""Objects through the API over mTLS against a real etcd: apply, CAS, status, patch, delete, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from persys.errors import Conflict, Invalid, NotFound
from persys.store import Etcd
from tests.support.cluster import RunningApi, raw_request
from tests.support.workloads import IMAGE, manifest

NS = "/apis/persys.dev/v1/namespaces/default"


def web(image: str = IMAGE, **metadata: Any) -> dict[str, Any]:
    """The workload these tests apply, with ``metadata`` additions (a resourceVersion)."""
    document = manifest("web", labels={"app": "web"}, image=image, ports=[{"name": "http", "containerPort": 18080}])
    document["metadata"].update(metadata)
    return document


async def test_apply_round_trip_unchanged_and_generation(api: RunningApi) -> None:
    async with api.client() as client:
        created, outcome = await client.apply_raw(web())
        assert outcome == "created" and created.metadata.generation == 1
        got = await client.get("workload", "web")
        assert got.spec["image"] == "persys/busybox:local" and got.spec["ports"][0]["protocol"] == "tcp"
        assert got.metadata.uid == created.metadata.uid
        same, outcome = await client.apply_raw(web())
        assert outcome == "unchanged"
        assert same.metadata.resourceVersion == created.metadata.resourceVersion
        assert same.metadata.generation == 1
        changed, outcome = await client.apply_raw(web(image="other:1"))
        assert outcome == "configured" and changed.metadata.generation == 2
        relabelled = web(image="other:1")
        relabelled["metadata"]["labels"]["tier"] = "front"
        after, outcome = await client.apply_raw(relabelled)
        assert outcome == "configured" and after.metadata.generation == 2


async def test_stale_resource_version_conflicts(api: RunningApi) -> None:
    async with api.client() as client:
        first, _ = await client.apply_raw(web())
        await client.apply_raw(web(image="other:1"))
        with pytest.raises(Conflict) as caught:
            await client.apply_raw(web(image="third:1", resourceVersion=first.metadata.resourceVersion))
        assert caught.value.code == 409
        current = await client.get("workload", "web")
        ok, outcome = await client.apply_raw(web(image="third:1", resourceVersion=current.metadata.resourceVersion))
        assert outcome == "configured" and ok.spec["image"] == "third:1"


async def test_status_writes_keep_generation(api: RunningApi) -> None:
    async with api.client("controller") as client:
        created, _ = await client.apply_raw(web())
        updated = await client.update_status("workload", "web", {"phase": "Running", "restarts": 0})
        assert updated.status["phase"] == "Running" and updated.metadata.generation == 1
        with pytest.raises(Conflict):
            await client.update_status("workload", "web", {"phase": "Failed"},
                                       resource_version=created.metadata.resourceVersion)
        with pytest.raises(Invalid) as caught:
            await client.update_status("workload", "web", {"phase": "Dancing"})
        assert caught.value.causes[0].field == "status.phase"
        reapplied, outcome = await client.apply_raw(web())
        assert outcome == "unchanged" and reapplied.status["phase"] == "Running"


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["spec"].pop("image"), "spec.image"),
    (lambda d: d["spec"]["ports"][0].update(containerPort=70000), "spec.ports[0].containerPort"),
    (lambda d: d["spec"].update(imagePullPolicy="Always"), "spec.imagePullPolicy"),
    (lambda d: d["spec"].update(resources={"memory": "lots"}), "spec.resources.memory"),
    (lambda d: d["metadata"].update(name="Web_1"), "metadata.name"),
])
async def test_invalid_objects_name_the_field_and_store_nothing(api: RunningApi, etcd: Etcd, change: Any,
                                                                field: str) -> None:
    document = web()
    change(document)
    async with api.client() as client:
        with pytest.raises(Invalid) as caught:
            await client.apply_raw(document)
        assert caught.value.code == 422
        assert field in [c.field for c in caught.value.causes]
        assert (await client.list("workloads"))[0] == []
    kvs, _ = await etcd.range("/persys/")
    assert kvs == []


async def test_bad_bodies_are_4xx_never_500(api: RunningApi) -> None:
    headers = {"Content-Type": "application/json"}
    status, body, _ = await raw_request(api, "PUT", f"{NS}/workloads/web", body=b"{not json", headers=headers)
    assert status == 400 and json.loads(body)["reason"] == "BadRequest"
    status, body, _ = await raw_request(api, "PUT", f"{NS}/workloads/web", body=b"[1, 2]", headers=headers)
    assert status == 400
    status, body, _ = await raw_request(api, "POST", f"{NS}/workloads", body=b"", headers=headers)
    assert status == 400
    status, body, _ = await raw_request(api, "PUT", f"{NS}/workloads/web", body=json.dumps(
        {**web(), "metadata": {"name": "other"}}).encode(), headers=headers)
    assert status == 400
    huge = json.dumps({**web(), "spec": {"image": "x", "env": {"BIG": "x" * (1024 * 1024 + 10)}}}).encode()
    status, body, _ = await raw_request(api, "PUT", f"{NS}/workloads/web", body=huge, headers=headers)
    assert status == 413 and json.loads(body)["code"] == 413
    status, body, _ = await raw_request(api, "GET", f"{NS}/gadgets")
    assert status == 404 and json.loads(body)["kind"] == "Status"
    status, body, _ = await raw_request(api, "GET", "/apis/persys.dev/v1/namespaces/default/nodes")
    assert status == 404
    status, _, _ = await raw_request(api, "GET", "/nowhere")
    assert status == 404
    status, body, _ = await raw_request(api, "DELETE", f"{NS}/workloads")
    assert status == 405 and json.loads(body)["reason"] == "MethodNotAllowed"
    status, body, _ = await raw_request(api, "PATCH", f"{NS}/workloads/web", body=b"{}",
                                        headers={"Content-Type": "application/json-patch+json"})
    assert status == 400


async def test_dry_run_stores_nothing(api: RunningApi, etcd: Etcd) -> None:
    async with api.client() as client:
        obj, outcome = await client.apply_raw(web(), dry_run=True)
        assert outcome == "created" and obj.metadata.name == "web"
        with pytest.raises(Invalid):
            await client.apply_raw(web(image=""), dry_run=True)
        assert (await etcd.range("/persys/"))[0] == []
        await client.apply_raw(web())
        preview, outcome = await client.apply_raw(web(image="other:1"), dry_run=True)
        assert outcome == "configured" and preview.metadata.generation == 2
        assert (await client.get("workload", "web")).spec["image"] == "persys/busybox:local"
        status, _, _ = await raw_request(api, "DELETE", f"{NS}/workloads/web?dryRun=All")
        assert status == 200
        await client.get("workload", "web")


async def test_create_list_patch_delete(api: RunningApi) -> None:
    async with api.client() as client:
        status, body, headers = await raw_request(api, "POST", f"{NS}/workloads", body=json.dumps(web()).encode(),
                                                  headers={"Content-Type": "application/json"})
        assert status == 201 and headers["X-Service-Name"] == "persys-api"
        status, body, _ = await raw_request(api, "POST", f"{NS}/workloads", body=json.dumps(web()).encode())
        assert status == 409
        other = web()
        other["metadata"] = {"name": "db", "labels": {"app": "db"}}
        await client.apply_raw(other)
        items, revision = await client.list("workloads", selector="app=web")
        assert [o.metadata.name for o in items] == ["web"] and int(revision) > 0
        status, body, _ = await raw_request(api, "GET", "/apis/persys.dev/v1/workloads")
        listing = json.loads(body)
        assert listing["kind"] == "WorkloadList" and len(listing["items"]) == 2
        assert listing["metadata"]["resourceVersion"].isdigit()
        patched = await client.patch("workload", "web", {"spec": {"env": {"A": "1"}}, "metadata": {"labels": None}})
        assert patched.spec["env"] == {"A": "1"} and patched.metadata.labels == {}
        assert patched.metadata.generation == 2
        with pytest.raises(Invalid):
            await client.patch("workload", "web", {"spec": {"restartPolicy": "Sometimes"}})
        await client.patch("workload", "web", {"metadata": {"finalizers": ["persys.dev/test"]}})
        marked = await client.delete("workload", "web")
        assert marked is not None and marked.metadata.deletionTimestamp
        await client.patch("workload", "web", {"metadata": {"finalizers": None}})
        with pytest.raises(NotFound):
            await client.get("workload", "web")
        deleted = await client.delete("workload", "db")
        assert deleted is not None and deleted.metadata.name == "db"


async def test_cluster_kinds_and_secrets(api: RunningApi) -> None:
    async with api.client() as client:
        node = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {"address": "127.0.0.1"}}
        created, outcome = await client.apply_raw(node)
        assert outcome == "created" and created.metadata.namespace == ""
        nodes, _ = await client.list("nodes", None)
        assert [n.metadata.name for n in nodes] == ["n1"]
        secret = {"kind": "Secret", "metadata": {"name": "git-token"}, "data": {"token": "s3cret"}}
        await client.apply_raw(secret)
        status, body, _ = await raw_request(api, "GET", f"{NS}/secrets/git-token")
        assert status == 200 and json.loads(body)["data"] == {"token": "s3cret"}
        status, _, _ = await raw_request(api, "GET", f"{NS}/secrets/git-token/status")
        assert status == 404
        status, body, _ = await raw_request(api, "GET", "/apis/persys.dev/v1/nodes/n1/status")
        assert status == 200 and json.loads(body)["metadata"]["name"] == "n1"
