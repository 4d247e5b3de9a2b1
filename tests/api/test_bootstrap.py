"""The join routes: /cluster-info to anyone, CSRs with a bootstrap token (401 saying why not), the
token's own CSRs only, weak keys refused, node-config for agents; every other route still needs a certificate."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from persys.errors import Invalid
from persys.resources import ObjectMeta, Resource
from persys.runtime.clock import to_iso
from persys.security import csr
from persys.security.bootstrap import CSR_PATH, ca_hash, new_token, secret_hash
from persys.security.tls import client_context
from tests.support.cluster import RunningApi, raw_request


async def anonymous(api: RunningApi, method: str, path: str, *, token: str | None = None,
                    body: Any = None) -> tuple[int, dict[str, Any]]:
    """A request over TLS that trusts the cluster CA and shows no client certificate."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(api.pki.ca_cert))) as http, \
            http.request(method, api.secure_url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def make_token(api: RunningApi, *, ttl: float = 3600, **spec: Any) -> str:
    token_id, secret = new_token()
    async with api.client() as admin:
        await admin.create(Resource(kind="BootstrapToken", metadata=ObjectMeta(name=token_id), spec={
            "secretHash": secret_hash(secret), "expires": to_iso(time.time() + ttl), **spec}))
    return f"{token_id}.{secret}"


def csr_body(name: str = "n2-abc", key: Any = None, **spec: Any) -> dict[str, Any]:
    pem = csr.new_request(key or csr.new_key(), "n2", "persys:agents", ["n2", "127.0.0.1"]).decode()
    return {"apiVersion": "persys.dev/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": pem, "role": "agents", **spec}}


async def test_cluster_info_gives_the_ca_to_anyone(api: RunningApi) -> None:
    status, body = await anonymous(api, "GET", "/cluster-info")
    assert status == 200
    assert body["caBundle"] == api.pki.ca_cert.read_text()
    assert body["caHashes"] == [ca_hash(api.pki.ca_cert.read_bytes())]


async def test_other_routes_still_need_a_certificate(api: RunningApi) -> None:
    for path in ("/apis/persys.dev/v1/workloads", "/apis/persys.dev/v1/bootstraptokens", "/healthz"):
        status, body = await anonymous(api, "GET", path)
        assert status == 401 and "client certificate" in body["message"], path


@pytest.mark.parametrize(("header", "said"), [
    (None, "a bootstrap token is required"),
    ("", "a bootstrap token is required"),
    ("abcdef", "malformed bootstrap token"),
    ("ABCDEF.0123456789abcdef", "malformed bootstrap token"),
    ("abcdef.0123456789abcdef", "'abcdef' is unknown"),
])
async def test_a_csr_without_a_good_token_is_401_with_the_reason(api: RunningApi, header: str | None,
                                                                   said: str) -> None:
    status, body = await anonymous(api, "POST", CSR_PATH, token=header, body=csr_body())
    assert status == 401 and said in body["message"], body


async def test_wrong_secret_expired_and_deleted_tokens_are_401(api: RunningApi) -> None:
    good = await make_token(api)
    token_id = good.partition(".")[0]
    status, body = await anonymous(api, "POST", CSR_PATH, token=f"{token_id}.{'x' * 16}", body=csr_body())
    assert status == 401 and "wrong secret" in body["message"]
    expired = await make_token(api, ttl=-60)
    status, body = await anonymous(api, "POST", CSR_PATH, token=expired, body=csr_body())
    assert status == 401 and "expired at" in body["message"]
    async with api.client() as admin:
        await admin.delete("BootstrapToken", token_id, namespace="")
    status, body = await anonymous(api, "POST", CSR_PATH, token=good, body=csr_body())
    assert status == 401 and "is unknown" in body["message"] and "revoked" in body["message"]


async def test_the_server_says_who_asked_and_a_token_reads_only_its_own(api: RunningApi) -> None:
    mine, other = await make_token(api), await make_token(api)
    forged = csr_body(username="admin", token="zzzzzz", sourceAddress="10.0.0.1")
    status, created = await anonymous(api, "POST", CSR_PATH, token=mine, body=forged)
    assert status == 201, created
    token_id = mine.partition(".")[0]
    assert created["spec"]["username"] == f"system:bootstrap:{token_id}"
    assert created["spec"]["token"] == token_id and created["spec"]["sourceAddress"] == "127.0.0.1"
    status, found = await anonymous(api, "GET", f"{CSR_PATH}/n2-abc", token=mine)
    assert status == 200 and found["metadata"]["name"] == "n2-abc"
    status, found = await anonymous(api, "GET", f"{CSR_PATH}/n2-abc", token=other)
    assert status == 404
    status, again = await anonymous(api, "POST", CSR_PATH, token=mine, body=csr_body())
    assert status == 409, again


async def test_weak_keys_and_garbage_are_refused_naming_the_field(api: RunningApi) -> None:
    token = await make_token(api)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    status, body = await anonymous(api, "POST", CSR_PATH, token=token, body=csr_body(key=weak))
    assert status == 422
    assert body["details"]["causes"] == [{"field": "spec.request",
                                          "message": "RSA key of 1024 bits: at least 2048 are required"}]
    status, body = await anonymous(api, "POST", CSR_PATH, token=token, body=csr_body(request="hello"))
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.request"
    status, body = await anonymous(api, "POST", CSR_PATH, token=token, body=csr_body(role="root"))
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.role"
    status, body = await anonymous(api, "POST", CSR_PATH, token=token, body=["not", "an", "object"])
    assert status == 422


async def test_bootstrap_tokens_are_validated(api: RunningApi) -> None:
    async with api.client() as admin:
        for name, spec, field in [
            ("toolong", {"secretHash": "sha256:" + "0" * 64, "expires": to_iso(time.time())}, "metadata.name"),
            ("abcdef", {"secretHash": "plain", "expires": to_iso(time.time())}, "spec.secretHash"),
            ("abcdef", {"secretHash": "sha256:" + "0" * 64, "expires": "tomorrow"}, "spec.expires"),
            ("abcdef", {"secretHash": "sha256:" + "0" * 64, "expires": to_iso(time.time()), "roles": ["admins"]},
             "spec.roles[0]"),
            ("abcdef", {"secretHash": "sha256:" + "0" * 64, "expires": to_iso(time.time()), "addresses": ["x"]},
             "spec.addresses[0]"),
        ]:
            with pytest.raises(Invalid) as caught:
                await admin.create(Resource(kind="BootstrapToken", metadata=ObjectMeta(name=name), spec=spec))
            assert [c.field for c in caught.value.causes] == [field]


async def test_node_config_is_for_agents(api: RunningApi) -> None:
    status, body, _ = await raw_request(api, "GET", "/bootstrap/node-config")
    assert status == 403, body
    status, body, _ = await raw_request(api, "GET", "/bootstrap/node-config", identity="node-n1")
    assert status == 503 and "HMAC secret" in json.loads(body)["message"]  # this test server has none
    status, _ = await anonymous(api, "GET", "/bootstrap/node-config")
    assert status == 401


async def test_an_agent_renews_over_mtls_and_reads_only_its_own(api: RunningApi) -> None:
    status, body, _ = await raw_request(api, "POST", CSR_PATH, identity="node-n1",
                                        body=json.dumps(csr_body("n1-renew")).encode())
    assert status == 201, body
    spec = json.loads(body)["spec"]
    assert spec["username"] == "n1" and spec["token"] == "" and spec["requester"]["role"] == "persys:agents"
    assert "127.0.0.1" in spec["requester"]["sans"] and "n1" in spec["requester"]["sans"]
    status, body, _ = await raw_request(api, "GET", f"{CSR_PATH}/n1-renew", identity="node-n1")
    assert status == 200, body
    status, body, _ = await raw_request(api, "POST", CSR_PATH, body=json.dumps(csr_body("admin-renew")).encode())
    assert status == 201 and json.loads(body)["spec"]["requester"]["role"] == "persys:admins"  # any role renews
    status, _, _ = await raw_request(api, "GET", f"{CSR_PATH}/n1-renew")  # but reads only its own
    assert status == 404
    token = await make_token(api)
    status, _ = await anonymous(api, "GET", f"{CSR_PATH}/n1-renew", token=token)
    assert status == 404
