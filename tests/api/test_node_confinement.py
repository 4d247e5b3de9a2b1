"""A node acts only for itself: hostile writes by a node certificate, and the logs route's choice of agent.

Node n1 (certificate ``node-n1``, role persys:agents) tries to take over workloads bound to n2:
writing their status, naming another node in status.nodeName, recording Events about them. The
logs route must reach only an agent that presents the bound node's certificate, so that a node
that registered another node's address (or listens where it used to be) gets no request to replay.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from persys.agentd.daemon import Agent, AgentConfig, node_tls
from persys.agentd.runtime import WorkloadSpec
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.api import ApiContext, ApiServer
from persys.api.server import tls_from_home
from persys.client import ApiClient
from persys.errors import Forbidden
from persys.security import pki
from persys.security.keyring import DEFAULT_KEY_ID
from persys.security.paths import HomePaths
from persys.security.tls import client_context
from persys.store import Etcd
from persys.store.server import free_port
from tests.support.cluster import RunningApi
from tests.support.workloads import agent_workload, manifest

SECRET = secrets.token_hex(32).encode()


def event(name: str, kind: str, about: str, **involved: str) -> dict[str, Any]:
    return {"kind": "Event", "metadata": {"name": name},
            "spec": {"involvedObject": {"kind": kind, "name": about, **involved}, "reason": "Started"}}


async def test_a_node_may_not_write_the_status_of_another_nodes_workload(api: RunningApi) -> None:
    async with api.client() as admin, api.client("node-n1") as n1:
        await admin.apply_raw(manifest("theirs", nodeName="n2"))
        await admin.apply_raw(manifest("unbound"))
        for name in ("theirs", "unbound"):
            with pytest.raises(Forbidden, match=f"may not write the status of workload default/{name}") as caught:
                await n1.update_status("workload", name, {"phase": "Running", "nodeName": "n1"})
            assert caught.value.code == 403
        assert (await admin.get("workload", "theirs")).status.get("phase") != "Running"
        await admin.apply_raw(manifest("mine", nodeName="n1"))
        written = await n1.update_status("workload", "mine", {"phase": "Running", "nodeName": "n1"})
        assert written.status["nodeName"] == "n1"


async def test_a_node_may_not_set_status_node_name_to_another_node(api: RunningApi) -> None:
    async with api.client() as admin, api.client("node-n1") as n1:
        await admin.apply_raw(manifest("mine", nodeName="n1"))
        with pytest.raises(Forbidden, match="may not set status.nodeName of workload default/mine to 'n2'"):
            await n1.update_status("workload", "mine", {"phase": "Running", "nodeName": "n2"})
        status, body, _ = await n1.request("PUT", n1.path("workload", "default", "mine", "status"),
                                           params={"dryRun": "All"}, body={"status": {"phase": "Running"}})
        assert status == 200 and body["status"] == {"phase": "Running"}
        assert (await admin.get("workload", "mine")).status.get("nodeName") in (None, "")


async def test_a_node_may_not_record_events_about_another_nodes_workload(api: RunningApi) -> None:
    async with api.client() as admin, api.client("node-n1") as n1:
        await admin.apply_raw(manifest("theirs", nodeName="n2"))
        mine = (await admin.apply_raw(manifest("mine", nodeName="n1")))[0]
        hostile = {
            "about their workload": event("e1", "Workload", "theirs"),
            "about another node": event("e2", "Node", "n2"),
            "about a bound name with another uid": event("e3", "Workload", "mine", uid="not-its-uid"),
        }
        for case, body in hostile.items():
            with pytest.raises(Forbidden, match="only about its own Node and the workloads bound to it") as caught:
                await n1.apply_raw(body)
            assert caught.value.code == 403, case
        assert (await n1.apply_raw(event("ok1", "Workload", "mine", uid=mine.metadata.uid)))[1] == "created"
        assert (await n1.apply_raw(event("ok2", "node", "n1")))[1] == "created"
        # nor overwrite, or patch, an Event the controllers recorded about n2's workload
        await admin.apply_raw(event("theirs-started", "Workload", "theirs"))
        with pytest.raises(Forbidden):
            await n1.apply_raw(event("theirs-started", "Workload", "mine"))
        with pytest.raises(Forbidden):
            await n1.patch("event", "theirs-started", {"spec": {"message": "forged"}})
        assert (await admin.get("event", "theirs-started")).spec["involvedObject"]["name"] == "theirs"


@pytest.fixture
async def logs_api(etcd_server: Any, etcd: Etcd, pki_home: HomePaths) -> AsyncIterator[ApiClient]:
    """An API server that can call agents (it has the HMAC secret), and an admin client of it."""
    server = ApiServer(ApiContext(Etcd(etcd_server.url), hmac_secret=SECRET), tls_from_home(pki_home.home),
                       listen=("127.0.0.1", 0), secure_listen=("127.0.0.1", 0))
    await server.start()
    try:
        async with ApiClient(server.secure_url, ca=pki_home.ca_cert, cert=pki_home.cert("admin"),
                             key=pki_home.key("admin")) as admin:
            yield admin
    finally:
        await server.stop()
        await server.ctx.etcd.close()


async def tls_agent(pki_home: HomePaths, name: str, certificate_of: str) -> Agent:
    """An agent answering as node ``name`` with the certificate of node ``certificate_of``."""
    cert, key = pki.issue(pki_home, f"node-{certificate_of}", "agents")
    agent = Agent(AgentConfig(name=name, host="127.0.0.1", port=free_port(), secrets={DEFAULT_KEY_ID: SECRET},
                              runtime_factory=lambda n, hub: SimulatedRuntime(n, hub, SimulationConfig()),
                              tls=node_tls(cert, key)))
    await agent.start()
    return agent


async def bound_workload(admin: ApiClient, agent: Agent) -> str:
    """Workload web bound to n1, its Node at ``agent``'s address, its container running on ``agent``."""
    await admin.apply_raw({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"address": agent.url}})
    uid = (await admin.apply_raw(manifest("web", nodeName="n1")))[0].metadata.uid
    await agent.runtime.apply(WorkloadSpec.from_body(uid, agent_workload(uid, "n1")))
    return uid


async def test_logs_reach_only_the_agent_with_the_bound_nodes_certificate(logs_api: ApiClient,
                                                                          pki_home: HomePaths) -> None:
    path = logs_api.path("workload", "default", "web") + "/log"
    impostor = await tls_agent(pki_home, "n1", certificate_of="n2")  # n2 listening at n1's registered address
    try:
        await bound_workload(logs_api, impostor)
        status, body = await get(logs_api, pki_home, path)
        assert status == 502, body
        assert "not verified as node 'n1'" in body["message"] and "'n2'" in body["message"], body
    finally:
        await impostor.stop()
    await logs_api.delete("workload", "web")
    genuine = await tls_agent(pki_home, "n1", certificate_of="n1")
    try:
        await bound_workload(logs_api, genuine)
        status, text = await get(logs_api, pki_home, path)
        assert status == 200 and "hollow" in text
    finally:
        await genuine.stop()


async def get(client: ApiClient, pki_home: HomePaths, path: str) -> tuple[int, Any]:
    """GET ``path`` as admin; (status, the JSON Status body or the text), errors included."""
    context = client_context(pki_home.ca_cert, pki_home.cert("admin"), pki_home.key("admin"))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session, \
            session.get(client.server + path) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if resp.content_type == "application/json" else text
