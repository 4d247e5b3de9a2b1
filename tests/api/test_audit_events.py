"""Audit events through a real API server over a real etcd: one per verb, with the audit.k8s.io/v1 fields."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any

import pytest

from persys.errors import NotFound
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.audit import audited_api, events_for, trail
from tests.support.cluster import RunningApi, raw_request
from tests.support.workloads import manifest

NS = "/apis/persys.dev/v1/namespaces/default"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def audited(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Any:
    with audited_api(etcd_server, pki_home, tmp_path) as api:
        yield api


def check_shape(event: dict[str, Any], verb: str, code: int, *, name: str = "", subresource: str = "",
                user: str = "admin", group: str = "persys:admins") -> None:
    assert event["kind"] == "Event" and event["apiVersion"] == "audit.k8s.io/v1"
    assert UUID.match(event["auditID"]), event["auditID"]
    assert event["verb"] == verb and event["responseStatus"]["code"] == code
    assert event["user"] == {"username": user, "groups": [group, "system:authenticated"]}
    assert event["impersonatedUser"] is None
    assert event["sourceIPs"] == ["127.0.0.1"] and "Python" in event["userAgent"]
    ref = event["objectRef"]
    assert ref == {"resource": "workloads", "namespace": "default", "name": name, "apiGroup": "persys.dev",
                   "apiVersion": "v1", "subresource": subresource}
    assert STAMP.match(event["requestReceivedTimestamp"]) and STAMP.match(event["stageTimestamp"])
    assert event["stageTimestamp"] >= event["requestReceivedTimestamp"]


async def one(audited: RunningApi, audit_id: str) -> dict[str, Any]:
    (found,) = await events_for(_audit_dir(audited), 1, auditID=audit_id)
    return found


def _audit_dir(audited: RunningApi) -> Path:
    settings = audited.thread.audit
    assert settings is not None
    return settings.directory


async def test_every_verb_records_one_event_with_the_k8s_fields(audited: RunningApi) -> None:
    async with audited.client() as client:
        calls: list[tuple[str, str, int, str, str, Any]] = [
            ("create", "POST", 201, "", "", manifest("web")),
            ("update", "PUT", 200, "web", "", manifest("web", command=["sleep", "1"])),
            ("patch", "PATCH", 200, "web", "", {"metadata": {"labels": {"tier": "front"}}}),
            ("update", "PUT", 200, "web", "status", {"kind": "Workload", "apiVersion": "persys.dev/v1",
                                                    "metadata": {"name": "web"}, "status": {"phase": "Running"}}),
            ("get", "GET", 200, "web", "", None),
            ("list", "GET", 200, "", "", None),
            ("delete", "DELETE", 200, "web", "", None),
        ]
        for verb, method, code, name, sub, body in calls:
            path = NS + "/workloads" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
            headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else None
            status, answer, response_headers = await client.request(method, path, body=body, headers=headers)
            assert status == code
            event = await one(audited, response_headers["Audit-ID"])
            check_shape(event, verb, code, name=name, subresource=sub)
            assert event["stage"] == "ResponseComplete" and event["level"] == "RequestResponse"
            assert event["requestURI"] == path
            if body is not None:
                assert event["requestObject"] == body
            assert event["responseObject"] == answer


async def test_errors_record_their_code_and_message(audited: RunningApi) -> None:
    async with audited.client() as client:
        with pytest.raises(NotFound) as caught:
            await client.get("workload", "ghost")
    (event,) = await events_for(_audit_dir(audited), 1, verb="get")
    check_shape(event, "get", 404, name="ghost")
    assert event["responseStatus"]["message"] == caught.value.message
    assert "responseObject" not in event


async def test_refused_requests_are_recorded_with_the_caller(audited: RunningApi) -> None:
    async with audited.client("node-n1") as client:
        with pytest.raises(Exception, match="may not"):
            await client.request("DELETE", NS + "/workloads/web")
    (event,) = await events_for(_audit_dir(audited), 1, verb="delete")
    check_shape(event, "delete", 403, name="web", user="n1", group="persys:agents")


async def test_reconcile_stop_start_actions_are_recorded(audited: RunningApi) -> None:
    async with audited.client() as client:
        await client.apply_raw(manifest("web"))
        await client.request("POST", "/workloads/web/reconcile")
        await client.request("PUT", "/workloads/web/desired-state", body={"desiredState": "Stopped"})
        await client.request("POST", "/reconciliation/trigger")
    events = await events_for(_audit_dir(audited), 4)
    actions = [(e["verb"], (e["objectRef"] or {}).get("subresource"), e["requestURI"]) for e in events[-3:]]
    assert actions == [("create", "reconcile", "/workloads/web/reconcile"),
                       ("update", "desired-state", "/workloads/web/desired-state"),
                       ("post", None, "/reconciliation/trigger")]
    assert events[-2]["requestObject"] == {"desiredState": "Stopped"}


async def test_a_watch_records_started_and_complete(audited: RunningApi) -> None:
    async with audited.client() as client:
        async def follow() -> None:
            async for _ in client.watch("workload"):
                pass

        watching = asyncio.create_task(follow())
        (started,) = await events_for(_audit_dir(audited), 1, verb="watch", stage="ResponseStarted")
        await client.apply_raw(manifest("web"))
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watching
    check_shape(started, "watch", 200)
    (complete,) = await events_for(_audit_dir(audited), 1, verb="watch", stage="ResponseComplete")
    assert complete["auditID"] == started["auditID"] and complete["responseStatus"]["code"] == 200


async def test_reads_follow_the_policy_level(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths,
                                             tmp_path: Path) -> None:
    policy = "rules:\n- {level: None, verbs: [get, list, watch]}\n- {level: Metadata}\n"
    with audited_api(etcd_server, pki_home, tmp_path, policy) as api:
        async with api.client() as client:
            await client.apply_raw(manifest("web"))
            await client.get("workload", "web")
            await client.list("workload")
        (event,) = await events_for(tmp_path / "audit", 1, verb="update")
    assert [e["verb"] for e in trail(tmp_path / "audit")] == ["update"]
    assert event["level"] == "Metadata" and "requestObject" not in event and "responseObject" not in event


async def test_secret_data_never_reaches_the_trail(audited: RunningApi) -> None:
    secret = {"apiVersion": "persys.dev/v1", "kind": "Secret", "metadata": {"name": "token"},
              "data": {"password": "hunter2-do-not-log"}}
    async with audited.client() as client:
        await client.request("PUT", NS + "/secrets/token", body=secret)
        await client.request("GET", NS + "/secrets/token")
        await client.request("PATCH", NS + "/secrets/token", body={"data": {"password": "hunter3-do-not-log"}},
                             headers={"Content-Type": "application/merge-patch+json"})
    events = await events_for(_audit_dir(audited), 3)
    secrets = [e for e in events if (e["objectRef"] or {}).get("resource") == "secrets"]
    assert [e["verb"] for e in secrets] == ["update", "get", "patch"]
    assert all(e["level"] == "Metadata" for e in secrets)
    text = "".join(path.read_text() for path in _audit_dir(audited).iterdir())
    assert "do-not-log" not in text and "hunter" not in text


async def test_the_plain_listener_is_not_audited(audited: RunningApi) -> None:
    status, _, headers = await raw_request(audited, "GET", "/healthz", plain=True)
    assert status == 200 and "Audit-ID" not in headers
    async with audited.client() as client:
        await client.apply_raw(manifest("web"))
    assert [e["verb"] for e in await events_for(_audit_dir(audited), 1)] == ["update"]


async def test_a_person_through_the_gateway_is_the_impersonated_user(audited: RunningApi) -> None:
    from persys.security import pki

    pki.issue(audited.pki, "gateway", "gateway")
    status, _, headers = await raw_request(audited, "GET", NS + "/workloads", identity="gateway", headers={
        "Impersonate-User": "github:octocat", "Impersonate-Group": "github-org:acme",
        "X-Forwarded-For": "192.0.2.7"})
    assert status == 403  # no binding: refused, and recorded as who it was for
    (event,) = await events_for(_audit_dir(audited), 1, auditID=headers["Audit-ID"])
    assert event["user"] == {"username": "gateway", "groups": ["persys:gateway", "system:authenticated"]}
    assert event["impersonatedUser"] == {"username": "github:octocat", "groups": ["github-org:acme"]}
    assert event["sourceIPs"] == ["192.0.2.7", "127.0.0.1"]
