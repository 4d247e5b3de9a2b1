"""mTLS and roles: no or foreign certificates are refused, agents are limited, the plain listener is public."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp
import pytest

from persys.client import ApiClient
from persys.errors import Forbidden, Unavailable
from persys.security import pki
from persys.security.tls import client_context
from tests.support.cluster import RunningApi, raw_request
from tests.support.workloads import manifest

WORKLOAD = manifest("web", nodeName="n1")  # bound to n1: n1's agent may write its status


async def _refused(url: str, context: ssl.SSLContext) -> bool:
    """Refused in the handshake (a foreign certificate), or with 401 (none: the listener asks for a certificate
    without requiring one, for the join routes, and every other route answers 401)."""
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session, \
                session.get(url + "/apis/persys.dev/v1/workloads") as resp:
            await resp.read()
            return resp.status == 401
    except (aiohttp.ClientError, ssl.SSLError, ConnectionError):
        return True


async def test_mtls_listener_needs_a_certificate_of_the_cluster_ca(api: RunningApi, tmp_path: Path) -> None:
    assert await _refused(api.secure_url, client_context(api.pki.ca_cert))
    other = pki.init(tmp_path / "other")
    assert await _refused(api.secure_url, client_context(api.pki.ca_cert, other.cert("admin"), other.key("admin")))
    async with ApiClient(api.secure_url, ca=api.pki.ca_cert, cert=other.cert("admin"),
                         key=other.key("admin")) as client:
        with pytest.raises(Unavailable):
            await client.list("workloads")


async def test_agent_reads_workloads_writes_only_its_node_status_and_events(api: RunningApi) -> None:
    async with api.client() as admin, api.client("node-n1") as agent:
        await admin.apply_raw(WORKLOAD)
        await admin.apply_raw({"kind": "Secret", "metadata": {"name": "token"}, "data": {"t": "x"}})
        assert [w.metadata.name for w in (await agent.list("workloads"))[0]] == ["web"]
        with pytest.raises(Forbidden) as caught:
            await agent.apply_raw(manifest("web", image="evil:1"))
        assert caught.value.code == 403
        with pytest.raises(Forbidden):
            await agent.delete("workload", "web")
        with pytest.raises(Forbidden):
            await agent.patch("workload", "web", {"spec": {"image": "evil:1"}})
        with pytest.raises(Forbidden):
            await agent.get("secret", "token")
        with pytest.raises(Forbidden):
            await agent.list("secrets")
        status = await agent.update_status("workload", "web", {"phase": "Running"})
        assert status.status["phase"] == "Running"
        node, outcome = await agent.apply_raw({"kind": "Node", "metadata": {"name": "n1"},
                                               "spec": {"address": "127.0.0.1"}})
        assert outcome == "created"
        await agent.update_status("node", "n1", {"runtime": "simulated"})
        with pytest.raises(Forbidden):
            await agent.apply_raw({"kind": "Node", "metadata": {"name": "n2"}, "spec": {}})
        event = {"kind": "Event", "metadata": {"name": "web-started"},
                 "spec": {"involvedObject": {"kind": "Workload", "name": "web"}, "reason": "Started"}}
        assert (await agent.apply_raw(event))[1] == "created"
        assert (await admin.get("node", "n1")).status["runtime"] == "simulated"


async def test_plain_listener_serves_only_public_paths(api: RunningApi) -> None:
    for path in ("/healthz", "/readyz", "/version", "/metrics", "/openapi.json"):
        status, _, headers = await raw_request(api, "GET", path, plain=True)
        assert status == 200, path
        assert headers["X-Service-Name"] == "persys-api"
    status, body, _ = await raw_request(api, "GET", "/apis/persys.dev/v1/workloads", plain=True)
    assert status == 404 and "mTLS" in json.loads(body)["message"]
    status, _, _ = await raw_request(api, "PUT", "/apis/persys.dev/v1/namespaces/default/workloads/web",
                                     body=json.dumps(WORKLOAD).encode(), plain=True)
    assert status == 404
