"""An agent request is bound to one node: by the HMAC signature, and over https by the node's certificate.

Every agent shares the HMAC secret, so the signature names the node it is meant for and another
node refuses it (401). An agent serving https is called only once it has presented the certificate
of the node the caller meant, signed by the cluster CA: a node listening at another node's
registered address, or a certificate of another cluster, gets no request at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from agent_support import KEY_ID, SECRET, new_uid
from cryptography import x509

from persys.agentd.daemon import Agent, AgentConfig, node_tls
from persys.agentd.node import NodeRegistration
from persys.agentd.runtime import WorkloadSpec
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.client import ApiClient
from persys.controllers.agents import AgentPool
from persys.errors import AgentError, Unauthorized
from persys.resources import REGISTRY, Resource
from persys.security import pki
from persys.security.hmac import sign, string_to_sign
from persys.security.keyring import HmacKey
from persys.security.paths import HomePaths
from persys.store.server import free_port
from tests.support.cluster import cli
from tests.support.workloads import agent_workload

TlsFiles = tuple[Path, Path] | None
StartAgent = Callable[..., Awaitable[Agent]]


@pytest.fixture(scope="module")
def cluster_pki(tmp_path_factory: pytest.TempPathFactory) -> HomePaths:
    """A cluster PKI from ``persys pki init`` with node-n1's certificate from ``persys pki issue``."""
    home = tmp_path_factory.mktemp("binding-pki")
    for args in (("pki", "init"), ("pki", "issue", "--identity", "node-n1", "--role", "agents")):
        code, out, err = cli(home, *args)
        assert code == 0, out + err
    return HomePaths(home)


@pytest.fixture
async def agents() -> AsyncIterator[StartAgent]:
    """Starts simulated agents named as asked, plain HTTP or HTTPS with the given certificate files."""
    started: list[Agent] = []

    async def start(name: str, tls: TlsFiles = None) -> Agent:
        agent = Agent(AgentConfig(name=name, host="127.0.0.1", port=free_port(), secrets={KEY_ID: SECRET},
                                  runtime_factory=lambda n, hub: SimulatedRuntime(n, hub, SimulationConfig()),
                                  tls=node_tls(*tls) if tls else None))
        await agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        await agent.stop()


def node(name: str, address: str) -> Resource:
    return REGISTRY.parse({"kind": "Node", "metadata": {"name": name}, "spec": {"address": address}})


def test_the_signature_covers_the_target_node() -> None:
    body = b'{"a": 1}'
    text = string_to_sign("POST", "/v1/workloads/x", 1700000000, "nonce1", body, node="n1")
    assert text == f"POST\n/v1/workloads/x\n1700000000\nnonce1\n{hashlib.sha256(body).hexdigest()}\nn1".encode()
    header = sign("POST", "/v1/workloads/x", body, "k", b"s", ts=1700000000, nonce="nonce1", node="n1")
    assert header.startswith("PERSYS-HMAC-SHA256 keyId=k, node=n1, ts=1700000000, nonce=nonce1, sig=")


async def test_a_request_signed_for_one_node_is_refused_by_another(agents: StartAgent) -> None:
    a, b = await agents("node-a"), await agents("node-b")
    uid = new_uid()
    await b.runtime.apply(WorkloadSpec.from_body(uid, agent_workload(uid, "node-b")))
    path = f"/v1/workloads/{uid}/logs?tail=5"  # what the API asks an agent for
    captured = {"Authorization": sign("GET", path, b"", KEY_ID, SECRET, node="node-a")}
    async with aiohttp.ClientSession() as session:
        async with session.get(b.url + path, headers=captured) as resp:  # replayed to another node
            assert resp.status == 401, await resp.text()  # not node-b's logs
            answer = await resp.json()
            assert answer["reason"] == "Unauthorized"
            assert answer["message"] == "request is signed for node 'node-a', this is node 'node-b'"
        async with session.get(a.url + path, headers=captured) as resp:  # the node it was meant for
            assert resp.status == 404, await resp.text()  # signature accepted; a has no such workload
    pool = AgentPool(lambda: HmacKey(KEY_ID, SECRET))
    try:
        with pytest.raises(Unauthorized, match="signed for node 'node-a'"):  # node-a's Node with node-b's address
            await pool.client(node("node-a", b.config.address)).list()
        assert [w["uid"] for w in await pool.client(node("node-b", b.config.address)).list()] == [uid]
    finally:
        await pool.close()


async def test_an_https_agent_must_present_the_certificate_of_the_node_called(
        agents: StartAgent, cluster_pki: HomePaths, tmp_path: Path) -> None:
    n2 = pki.issue(cluster_pki, "node-n2", "agents")
    foreign = pki.issue(pki.init(tmp_path / "other-cluster"), "node-n1", "agents")
    genuine = await agents("n1", tls=(cluster_pki.cert("node-n1"), cluster_pki.key("node-n1")))
    impostor = await agents("n1", tls=n2)  # node n2, answering as n1 at the address n1 registered
    stranger = await agents("n1", tls=foreign)  # a certificate for n1 from another cluster's CA
    pool = AgentPool(lambda: HmacKey(KEY_ID, SECRET), ca=cluster_pki.ca_cert)
    try:
        refusals = {impostor: "the agent presented the certificate of 'n2' (role persys:agents), not of node 'n1'",
                    stranger: "certificate verify failed"}
        for agent, reason in refusals.items():
            with pytest.raises(AgentError, match="is not verified as node 'n1'") as caught:
                await pool.client(node("n1", agent.url)).apply(agent_workload(new_uid(), "n1"))
            assert reason in caught.value.message
            assert await agent.runtime.list() == []  # the request never reached it
        client = pool.client(node("n1", genuine.url))
        uid = new_uid()
        assert (await client.wait(await client.apply(agent_workload(uid, "n1")), 10))["state"] == "succeeded"
    finally:
        await pool.close()


def test_agent_certificates_serve_tls_for_the_agents_addresses(cluster_pki: HomePaths) -> None:
    cert = x509.load_pem_x509_certificate(cluster_pki.cert("node-n1").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"n1", "localhost"}
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usages
    # an agent listening on another address gets a certificate that covers it; one that covers it is kept
    cert_path, _ = pki.issue(cluster_pki, "node-n3", "agents")
    cert_path, _ = pki.issue(cluster_pki, "node-n3", "agents", sans=["10.1.2.3"])
    reissued = cert_path.read_bytes()
    assert "10.1.2.3" in {str(ip) for ip in x509.load_pem_x509_certificate(reissued).extensions
                          .get_extension_for_class(x509.SubjectAlternativeName).value
                          .get_values_for_type(x509.IPAddress)}
    assert pki.issue(cluster_pki, "node-n3", "agents", sans=["10.1.2.3"])[0].read_bytes() == reissued


async def test_a_tls_agent_registers_an_https_address(cluster_pki: HomePaths) -> None:
    registration = NodeRegistration(ApiClient("http://127.0.0.1:1"), "n1", "127.0.0.1:7999", {}, "simulated")
    agent = Agent(AgentConfig(name="n1", host="127.0.0.1", port=7999, secrets={KEY_ID: SECRET},
                              runtime_factory=lambda n, hub: SimulatedRuntime(n, hub, SimulationConfig()),
                              registration=registration))
    agent.serve_tls(node_tls(cluster_pki.cert("node-n1"), cluster_pki.key("node-n1")))
    assert registration.address == "https://127.0.0.1:7999" and agent.url == "https://127.0.0.1:7999"
    await registration.api.close()
