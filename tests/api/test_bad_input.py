"""Malformed objects on every write route answer with a Status, never a 500 (and the object routes 4xx)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.cluster import RunningApi, raw_request

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
