"""``POST /webhooks/github`` on a real gateway and API: signatures, replays, pings, pushes, limits."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from persys.gateway.server import Gateway
from persys.gateway.webhooks import MAX_BODY, signature
from persys.resources import REGISTRY
from persys.security.tls import client_context
from tests.support.cluster import RunningApi

SECRET = "s3cret"
REPO = {"full_name": "acme/shop", "clone_url": "https://github.com/acme/shop.git",
        "html_url": "https://github.com/acme/shop", "default_branch": "main"}
A, B = "a" * 40, "b" * 40


def push(after: str, ref: str = "refs/heads/main", **extra: Any) -> dict[str, Any]:
    return {"ref": ref, "before": "0" * 40 if after != A else B, "after": after, "repository": REPO, **extra}


async def deliver(gateway: Gateway, api: RunningApi, event: str, payload: Any, *, delivery: str | None = None,
                  secret: str | None = SECRET, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    raw = body if body is not None else json.dumps(payload).encode()
    sent = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json", **(headers or {})}
    if secret is not None:
        sent["X-Hub-Signature-256"] = signature(secret, raw)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(api.pki.ca_cert))) as s, \
            s.post(gateway.url + "/webhooks/github", data=raw, headers=sent) as resp:
        return resp.status, await resp.json(content_type=None)


def compose_workload(name: str, namespace: str = "default", ref: str = "main") -> Any:
    return REGISTRY.parse({"kind": "Workload", "metadata": {"name": name, "namespace": namespace}, "spec": {
        "type": "compose", "compose": {"repo": "https://github.com/acme/shop", "ref": ref}}})


@pytest.fixture
async def hooked(gateway: Gateway, api: RunningApi) -> AsyncIterator[Gateway]:
    """The gateway with a webhook secret for acme/shop (redeploying in default) and three workloads."""
    async with api.client() as admin:
        await admin.apply_raw({"apiVersion": "persys.dev/v1", "kind": "Secret", "metadata": {
            "name": "webhook-acme-shop", "namespace": "persys-gateway", "labels": {"persys.dev/webhook": "github"}},
            "data": {"repository": "acme/shop", "secret": SECRET, "namespaces": "default"}})
        for workload in (compose_workload("shop"), compose_workload("shop-dev", ref="dev"),
                         compose_workload("shop", namespace="other")):
            await admin.create(workload)
    yield gateway


async def revision(api: RunningApi, name: str, namespace: str = "default") -> str:
    async with api.client() as admin:
        return str((await admin.get("Workload", name, namespace)).spec["compose"].get("revision", ""))


async def test_a_push_sets_the_revision_of_the_workloads_following_the_branch(hooked: Gateway,
                                                                             api: RunningApi) -> None:
    status, body = await deliver(hooked, api, "push", push(A))
    assert (status, body["updated"], body["revision"]) == (200, ["default/shop"], A)
    assert await revision(api, "shop") == A
    assert await revision(api, "shop-dev") == ""  # another branch
    assert await revision(api, "shop", "other") == ""  # a namespace the secret does not cover

    status, body = await deliver(hooked, api, "push", push(A))  # a new delivery of the same commit
    assert status == 202 and "no workload" in body["message"]  # already there: nothing to change


async def test_signatures_are_checked_against_the_repository_secret(hooked: Gateway, api: RunningApi) -> None:
    for secret, why in ((None, "missing"), ("wrong", "does not match")):
        status, body = await deliver(hooked, api, "push", push(A), secret=secret)
        assert status == 401 and why in body["message"], body
    other = {**push(A), "repository": {**REPO, "full_name": "acme/unknown"}}
    status, body = await deliver(hooked, api, "push", other)
    assert status == 401 and "no webhook secret" in body["message"]
    assert await revision(api, "shop") == ""  # nothing acted on


async def test_a_delivery_is_acted_on_once(hooked: Gateway, api: RunningApi) -> None:
    delivery = str(uuid.uuid4())
    assert (await deliver(hooked, api, "push", push(A), delivery=delivery))[0] == 200
    async with api.client() as admin:  # someone pins the old commit back; a replay must not undo that
        await admin.patch("Workload", "shop", {"spec": {"compose": {"revision": B}}})
    status, body = await deliver(hooked, api, "push", push(A), delivery=delivery)
    assert status == 200 and body["duplicate"] is True
    assert await revision(api, "shop") == B
    async with api.client() as admin:
        record = await admin.get("WebhookDelivery", delivery, "persys-gateway")
    assert record.spec["repository"] == "acme/shop" and record.spec["event"] == "push"


@pytest.mark.parametrize(("event", "payload", "code", "words"), [
    ("ping", {"zen": "Design for failure.", "repository": REPO}, 200, "pong"),
    ("push", push(A, ref="refs/tags/v1"), 202, "not a branch"),
    ("push", push("0" * 40, deleted=True), 202, "deleted"),
    ("push", push(A, ref="refs/heads/feature"), 202, "no workload follows"),
    ("issues", {"action": "opened", "repository": REPO}, 202, "not acted on"),
])
async def test_other_deliveries_are_answered_and_change_nothing(hooked: Gateway, api: RunningApi, event: str,
                                                                payload: dict[str, Any], code: int, words: str) -> None:
    status, body = await deliver(hooked, api, event, payload)
    assert status == code and words in body["message"], body
    assert await revision(api, "shop") == ""


async def test_bad_deliveries_get_4xx_naming_the_problem(hooked: Gateway, api: RunningApi) -> None:
    status, body = await deliver(hooked, api, "push", None, body=b"{not json")
    assert status == 400 and "not JSON" in body["message"]
    status, body = await deliver(hooked, api, "push", {"ref": "refs/heads/main"})
    assert status == 400 and "repository.full_name" in body["message"]
    status, body = await deliver(hooked, api, "", push(A))
    assert status == 400 and "X-GitHub-Event" in body["message"]

    async def huge() -> AsyncIterator[bytes]:  # streamed, no Content-Length: the limit counts what arrives
        chunk = b" " * (1 << 20)
        for _ in range(MAX_BODY // len(chunk) + 1):
            yield chunk

    sent = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": "sha256=0"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(api.pki.ca_cert))) as s:
        try:
            async with s.post(hooked.url + "/webhooks/github", data=huge(), headers=sent) as resp:
                assert resp.status == 413 and "exceeds" in (await resp.json())["message"]
        except aiohttp.ClientOSError:
            pytest.fail("the gateway dropped the connection instead of answering 413")
