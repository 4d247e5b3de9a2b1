"""Hostile values through the real API on mTLS: each is refused with a 4xx naming the field, or the
server keeps control (uids), and nothing invalid is stored (issue 10)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from persys.errors import Conflict, Invalid
from persys.resources import REGISTRY, ObjectMeta, Resource
from persys.store import Etcd, ObjectStore
from tests.support.cluster import RunningApi, raw_request

NS = "/apis/persys.dev/v1/namespaces/default"
GOOD = {"apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": {"name": "web"},
        "spec": {"image": "persys/busybox:local"}}


def spec(**extra: Any) -> str:
    return json.dumps({**GOOD, "spec": {**GOOD["spec"], **extra}})


def compose(**extra: Any) -> str:
    return json.dumps({**GOOD, "spec": {"type": "compose", "compose": {"repo": "https://example.com/a.git", **extra}}})


def meta(**extra: Any) -> str:
    return json.dumps({**GOOD, "metadata": {"name": "web", **extra}})


async def refused(api: RunningApi, body: str, path: str = f"{NS}/workloads/web") -> dict[str, str]:
    """PUT ``body`` (raw JSON text); assert a 422 and nothing stored; the causes by field."""
    status, answer, _ = await raw_request(api, "PUT", path, body=body.encode(),
                                          headers={"Content-Type": "application/json"})
    assert status == 422, answer
    status, _, _ = await raw_request(api, "GET", f"{NS}/workloads/web")
    assert status == 404
    return {c["field"]: c["message"] for c in json.loads(answer)["details"]["causes"]}


# ---- numbers: finite, bounded ----

async def test_backoff_infinity_is_refused(api: RunningApi) -> None:
    body = spec(backoff={"initialSeconds": 1}).replace('"initialSeconds": 1', '"initialSeconds": Infinity')
    assert "finite" in (await refused(api, body))["spec.backoff.initialSeconds"]


async def test_backoff_nan_is_refused(api: RunningApi) -> None:
    body = spec(backoff={"maxSeconds": 1}).replace('"maxSeconds": 1', '"maxSeconds": NaN')
    assert "finite" in (await refused(api, body))["spec.backoff.maxSeconds"]


async def test_backoff_overflowing_literal_is_refused(api: RunningApi) -> None:
    body = spec(backoff={"initialSeconds": 1}).replace('"initialSeconds": 1', '"initialSeconds": 1e400')
    assert "finite" in (await refused(api, body))["spec.backoff.initialSeconds"]


async def test_backoff_1e308_is_out_of_range(api: RunningApi) -> None:
    assert "0-86400" in (await refused(api, spec(backoff={"initialSeconds": 1e308})))["spec.backoff.initialSeconds"]


async def test_backoff_initial_above_max_is_refused(api: RunningApi) -> None:
    causes = await refused(api, spec(backoff={"initialSeconds": 60, "maxSeconds": 5}))
    assert "must not exceed spec.backoff.maxSeconds" in causes["spec.backoff.initialSeconds"]


async def test_nan_inside_an_untyped_field_is_refused(api: RunningApi) -> None:
    body = spec(service={"name": "web", "port": 1}).replace('"port": 1', '"port": NaN')
    assert "finite" in (await refused(api, body))["spec.service.port"]


async def test_store_never_writes_nan(etcd: Etcd) -> None:
    store = ObjectStore(etcd, REGISTRY)
    obj = Resource(kind="Workload", metadata=ObjectMeta(name="web", namespace="default"),
                   spec={"image": "busybox", "backoff": {"initialSeconds": float("nan")}})
    with pytest.raises(Invalid, match="cannot be stored"):
        await store.create(obj)
    assert (await store.list("Workload"))[0] == []


# ---- images, git sources, paths ----

async def test_shell_in_image_is_refused(api: RunningApi) -> None:
    assert "invalid reference format" in (await refused(api, spec(image="; rm -rf /")))["spec.image"]


async def test_repo_option_injection_is_refused(api: RunningApi) -> None:
    causes = await refused(api, compose(repo="--upload-pack=touch /tmp/pwned"))
    assert "must not start with '-'" in causes["spec.compose.repo"]


async def test_repo_ext_transport_is_refused(api: RunningApi) -> None:
    causes = await refused(api, compose(repo="ext::sh -c touch% /tmp/pwned"))
    assert "is not an allowed git URL" in causes["spec.compose.repo"]


async def test_repo_scheme_is_refused(api: RunningApi) -> None:
    assert "scheme 'ftp' is not allowed" in (await refused(api, compose(repo="ftp://example.com/a.git")))[
        "spec.compose.repo"]


async def test_bad_git_ref_is_refused(api: RunningApi) -> None:
    assert "contains '..'" in (await refused(api, compose(ref="main..evil")))["spec.compose.ref"]


async def test_compose_path_escaping_the_checkout_is_refused(api: RunningApi) -> None:
    assert "inside the repository" in (await refused(api, compose(path="../../etc")))["spec.compose.path"]


async def test_compose_file_escaping_the_checkout_is_refused(api: RunningApi) -> None:
    causes = await refused(api, compose(path="app", file="../../etc/passwd"))
    assert "inside the repository" in causes["spec.compose.file"]


async def test_absolute_compose_file_is_refused(api: RunningApi) -> None:
    assert "not absolute" in (await refused(api, compose(file="/etc/passwd")))["spec.compose.file"]


async def test_relative_working_dir_is_refused(api: RunningApi) -> None:
    assert "absolute path" in (await refused(api, spec(workingDir="tmp")))["spec.workingDir"]


# ---- env, labels, annotations, node selectors, quantities ----

async def test_env_key_that_is_no_posix_name_is_refused(api: RunningApi) -> None:
    assert "POSIX name" in (await refused(api, spec(env={"A=B": "x"})))["spec.env.A=B"]


async def test_env_value_with_nul_is_refused(api: RunningApi) -> None:
    assert "NUL" in (await refused(api, spec(env={"A": "x\u0000y"})))["spec.env.A"]


async def test_bad_label_key_is_refused(api: RunningApi) -> None:
    assert "name part" in (await refused(api, meta(labels={"bad key!": "x"})))["metadata.labels.bad key!"]


async def test_long_label_value_is_refused(api: RunningApi) -> None:
    assert "at most 63" in (await refused(api, meta(labels={"app": "a" * 64})))["metadata.labels.app"]


async def test_bad_annotation_key_is_refused(api: RunningApi) -> None:
    causes = await refused(api, meta(annotations={"Example.com/x": "free text is fine"}))
    assert "prefix 'Example.com'" in causes["metadata.annotations.Example.com/x"]


async def test_bad_node_selector_is_refused(api: RunningApi) -> None:
    assert "name part" in (await refused(api, spec(nodeSelector={"zone/": "a"})))["spec.nodeSelector.zone/"]


async def test_bad_node_label_is_refused(api: RunningApi) -> None:
    body = json.dumps({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"labels": {"zone": "a b"}}})
    status, answer, _ = await raw_request(api, "PUT", "/apis/persys.dev/v1/nodes/n1", body=body.encode())
    assert status == 422 and json.loads(answer)["details"]["causes"][0]["field"] == "spec.labels.zone", answer


async def test_huge_cpu_is_refused(api: RunningApi) -> None:
    assert "at most 1024 cores" in (await refused(api, spec(resources={"cpu": "5000"})))["spec.resources.cpu"]


async def test_huge_memory_is_refused(api: RunningApi) -> None:
    causes = await refused(api, spec(resources={"memory": "9" * 400 + "Pi"}))
    assert "at most 16Ti" in causes["spec.resources.memory"]


# ---- namespaces ----

async def test_namespace_with_slash_in_url_is_a_field_error(api: RunningApi) -> None:
    path = "/apis/persys.dev/v1/namespaces/a%2Fb/workloads"
    assert "DNS-1123" in (await refused(api, json.dumps(GOOD), f"{path}/web"))["metadata.namespace"]
    for read in (path, f"{path}/web", f"{path}?watch=true"):
        status, answer, _ = await raw_request(api, "GET", read)
        assert status == 422 and json.loads(answer)["details"]["causes"][0]["field"] == "metadata.namespace", answer


async def test_namespace_with_slash_in_body_is_a_field_error(api: RunningApi) -> None:
    assert "DNS-1123" in (await refused(api, meta(namespace="a/b")))["metadata.namespace"]


# ---- uids are the server's ----

async def test_create_ignores_the_clients_uid(api: RunningApi) -> None:
    async with api.client() as client:
        created, _ = await client.apply_raw({**GOOD, "metadata": {"name": "web", "uid": "chosen-by-client"}})
        assert created.metadata.uid not in ("", "chosen-by-client")
        status, answer, _ = await raw_request(api, "POST", f"{NS}/workloads", body=meta(name="web2", uid="x").encode())
        assert status == 201 and json.loads(answer)["metadata"]["uid"] != "x"


async def test_exported_renamed_object_is_independent(api: RunningApi) -> None:
    async with api.client() as client:
        original, _ = await client.apply_raw(GOOD)
        exported = (await client.get("workload", "web")).to_dict()
        exported["metadata"]["name"] = "copy"
        copy, outcome = await client.apply_raw(exported)
        assert outcome == "created" and copy.metadata.uid != original.metadata.uid
        assert (await client.get("workload", "web")).metadata.uid == original.metadata.uid


async def test_update_naming_another_uid_conflicts(api: RunningApi) -> None:
    async with api.client() as client:
        original, _ = await client.apply_raw(GOOD)
        with pytest.raises(Conflict, match="is not the stored object's uid"):
            await client.apply_raw({**GOOD, "metadata": {"name": "web", "uid": "another"}})
        with pytest.raises(Conflict, match="is not the stored object's uid"):
            await client.patch("workload", "web", {"metadata": {"uid": "another"}})
        assert (await client.get("workload", "web")).metadata.uid == original.metadata.uid


# ---- watch resourceVersion ----

@pytest.mark.parametrize("version", [str(2**63), str(2**63 - 1), "99999999999999999999999", "１２"])
async def test_out_of_range_watch_version_is_a_client_error(api: RunningApi, version: str) -> None:
    status, answer, _ = await raw_request(api, "GET", f"{NS}/workloads?watch=true&resourceVersion={version}")
    assert status == 400 and "resourceVersion" in json.loads(answer)["message"], answer
