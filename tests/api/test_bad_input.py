"""Malformed objects and bodies on every write route answer with a Status, never a 500 (the object routes 4xx)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from persys.api import reconciliation
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.cluster import ApiThread, RunningApi, raw_request

NS = "/apis/persys.dev/v1/namespaces/default"
GOOD = {"kind": "Workload", "metadata": {"name": "web"}, "spec": {"image": "x"}}


def with_meta(**meta: Any) -> dict[str, Any]:
    return {**GOOD, "metadata": {"name": "web", **meta}}


def with_spec(**spec: Any) -> dict[str, Any]:
    return {**GOOD, "spec": {"image": "x", **spec}}


BODIES = [
    with_meta(resourceVersion="abc"), with_meta(generation="abc"), with_meta(finalizers=5),
    with_meta(finalizers=[1]), with_meta(labels=["a"]), with_meta(annotations=3), with_meta(deletionTimestamp=5),
    with_meta(uid={"a": 1}), with_meta(creationTimestamp=[]), with_meta(namespace=7),
    {**GOOD, "metadata": {"name": 5}}, {**GOOD, "spec": "x"}, {**GOOD, "kind": 5}, {**GOOD, "apiVersion": []},
    with_spec(ports="x"), with_spec(ports=[5]), with_spec(env={"A": 1}), with_spec(service={"name": "web", "port": []}),
    with_spec(ports=[{"containerPort": 1, "hostPort": 2}, {"containerPort": 1, "hostPort": 2}]),
    with_spec(resources={"cpu": True}), with_spec(nodeSelector={"a": 5}), with_spec(ports=[{"containerPort": "80"}]),
    with_spec(ports=[{"containerPort": 1.5}]), with_spec(backoff={"initialSeconds": "a"}),
]
ROUTES = [("PUT", f"{NS}/workloads/web"), ("POST", f"{NS}/workloads"), ("PUT", f"{NS}/workloads/web/status"),
          ("PATCH", f"{NS}/workloads/web")]


@pytest.mark.parametrize("body", BODIES)
async def test_malformed_objects_are_client_errors(api: RunningApi, body: dict[str, Any]) -> None:
    status, _, _ = await raw_request(api, "PUT", f"{NS}/workloads/web", body=json.dumps(GOOD).encode())
    assert status == 201
    for method, path in ROUTES:
        headers = {"Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"}
        status, answer, _ = await raw_request(api, method, path, body=json.dumps(body).encode(), headers=headers)
        assert status < 500, (method, path, answer)
        if not path.endswith("/status"):  # status writes only read metadata.resourceVersion and status
            assert status >= 400 and json.loads(answer)["kind"] == "Status", (method, path, answer)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", f"{NS}/workloads?watch=true&resourceVersion=abc"),
    ("GET", f"{NS}/workloads?labelSelector=a%20in%20("),
    ("PUT", f"{NS}/workloads/web?dryRun=Some"),
])
async def test_malformed_queries_are_client_errors(api: RunningApi, method: str, path: str) -> None:
    body = json.dumps(GOOD).encode() if method == "PUT" else None
    status, answer, _ = await raw_request(api, method, path, body=body)
    assert 400 <= status < 500, answer


DEEP = [b"[" * 100_000, b'{"a": ' * 100_000, b'{"kind": "Workload", "spec": {"env": ' + b"[" * 80 + b"]" * 80 + b"}}"]


@pytest.mark.parametrize("body", DEEP, ids=["arrays", "objects", "under-the-recursion-limit"])
async def test_deeply_nested_bodies_are_400(api: RunningApi, body: bytes) -> None:
    for method, path in ROUTES:
        headers = {"Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json"}
        status, answer, _ = await raw_request(api, method, path, body=body, headers=headers)
        assert status == 400, (method, path, answer)
        assert "nests deeper than 64 levels" in json.loads(answer)["message"], (method, path, answer)


async def test_deeply_nested_desired_state_is_400(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths,
                                                  tmp_path: Path) -> None:
    thread = ApiThread(etcd_server.url, pki_home.home, extra_routes=[reconciliation.add_routes]).start()
    try:
        api = RunningApi(thread, pki_home, tmp_path / "home")
        for body in DEEP:
            status, answer, _ = await raw_request(api, "PUT", "/workloads/web/desired-state", body=body)
            assert status == 400 and "nests deeper" in json.loads(answer)["message"], answer
    finally:
        thread.stop()
