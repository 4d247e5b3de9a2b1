"""The CLI and the agents find API servers by SRV ``_persys-api._tcp.<zone>`` and skip dead ones.

Two API servers register in DNS, the preferred one dies without withdrawing its record (as
after a crash), and ``persys get nodes`` — a child process whose config names a dead server
URL — still succeeds through the other. When DNS does not answer, the configured server is
used, and the debug log says so.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from persys.agentd.launcher import Credentials, LaunchSettings, build_agents
from persys.agentd.node import NodeRegistration
from persys.client import ApiClient
from persys.client.discovery import pick_api_server
from persys.dns import DnsServer, register_api_server
from persys.resources import REGISTRY
from persys.security.paths import HomePaths
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer, free_port
from tests.observability.test_tracing import local_env, run_cli
from tests.support.cluster import ApiThread, RunningApi
from tests.support.eventually import eventually

ZONE = "persys.local"


def debug_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def write_config(home: Path, pki: HomePaths, server: str, **extra: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    config = {"server": server, "ca": str(pki.ca_cert), "cert": str(pki.cert("admin")),
              "key": str(pki.key("admin")), **extra}
    (home / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
async def dns_server(etcd: Etcd) -> AsyncIterator[DnsServer]:
    server = DnsServer(etcd, ZONE, "127.0.0.1", free_port())
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def two_apis(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths) -> Iterator[list[ApiThread]]:
    threads = [ApiThread(etcd_server.url, pki_home.home).start() for _ in range(2)]
    try:
        yield threads
    finally:
        for thread in threads:
            thread.stop()


async def test_cli_moves_to_the_live_api_server(etcd: Etcd, store: ObjectStore, dns_server: DnsServer,
                                                two_apis: list[ApiThread], pki_home: HomePaths,
                                                tmp_path: Path) -> None:
    first, second = two_apis
    assert first.server is not None and second.server is not None
    preferred = await register_api_server(etcd, ZONE, "127.0.0.1", first.server.secure_port, ttl=60, priority=10)
    other = await register_api_server(etcd, ZONE, "127.0.0.1", second.server.secure_port, ttl=60, priority=20)
    try:
        await store.create(REGISTRY.parse({"kind": "Node", "metadata": {"name": "found-via-srv"},
                                           "spec": {"address": "127.0.0.1:1"}}))
        dns_address = f"127.0.0.1:{dns_server.port}"
        dead_url = f"https://127.0.0.1:{free_port()}"
        await preferred.close(revoke=False)  # "crashes": its record stays until the lease expires
        first.stop()
        home = tmp_path / "home"

        write_config(home, pki_home, dead_url, dns=dns_address, zone=ZONE)
        code, out, err = await run_cli(home, "get", "nodes", env=local_env(PERSYS_LOG_LEVEL="debug"))
        assert code == 0 and "found-via-srv" in out, out + err
        lines = debug_lines(err)
        skipped = [line["url"] for line in lines if line.get("event") == "discovery.unreachable"]
        assert skipped == [first.secure_url], lines
        using = [line for line in lines if line.get("event") == "discovery.using"]
        assert using and using[0]["server"] == second.secure_url and using[0]["discovered"] is True, lines

        # the DNS server may also come from PERSYS_DNS or --dns instead of config.yaml
        write_config(home, pki_home, dead_url)
        code, out, err = await run_cli(home, "get", "nodes", env=local_env(PERSYS_DNS=dns_address))
        assert code == 0 and "found-via-srv" in out, out + err
        code, out, err = await run_cli(home, "get", "nodes", "--dns", dns_address, env=local_env())
        assert code == 0 and "found-via-srv" in out, out + err
        code, out, err = await run_cli(home, "get", "nodes", env=local_env())  # no DNS: the dead URL only
        assert code == 1 and "cannot reach API server" in err, out + err
    finally:
        await preferred.close()
        await other.close()


async def test_cli_falls_back_to_the_configured_server(api: RunningApi, pki_home: HomePaths,
                                                       tmp_path: Path) -> None:
    silent_dns = f"127.0.0.1:{free_port()}"  # nobody answers there
    home = tmp_path / "fallback"
    write_config(home, pki_home, api.secure_url, dns=silent_dns, zone=ZONE)
    code, out, err = await run_cli(home, "get", "nodes", env=local_env(PERSYS_LOG_LEVEL="debug"))
    assert code == 0, out + err
    lines = debug_lines(err)
    failed = [line for line in lines if line.get("event") == "discovery.failed"]
    assert failed and failed[0]["fallback"] == api.secure_url and failed[0]["dns_server"] == silent_dns, lines
    using = [line for line in lines if line.get("event") == "discovery.using"]
    assert using and using[0]["server"] == api.secure_url and using[0]["discovered"] is False, lines
    # a malformed DNS address is a failed discovery too, not a crash
    code, out, err = await run_cli(home, "get", "nodes", "--dns", "127.0.0.1:dns",
                                   env=local_env(PERSYS_LOG_LEVEL="debug"))
    assert code == 0 and "not HOST:PORT" in err, out + err


async def test_agent_registers_through_the_discovered_server(etcd: Etcd, store: ObjectStore,
                                                             dns_server: DnsServer, two_apis: list[ApiThread],
                                                             pki_home: HomePaths, tmp_path: Path) -> None:
    live = two_apis[1]
    assert live.server is not None
    registration = await register_api_server(etcd, ZONE, "127.0.0.1", live.server.secure_port)
    settings = LaunchSettings(name="n1", host="127.0.0.1", port=free_port(), runtime="simulated",
                              secrets={"default": b"x" * 32}, state_dir=tmp_path / "state",
                              server=f"https://127.0.0.1:{free_port()}", dns=f"127.0.0.1:{dns_server.port}",
                              zone=ZONE)
    credentials = Credentials(pki_home.ca_cert, pki_home.cert("node-n1"), pki_home.key("node-n1"))
    (agent,) = build_agents(settings, lambda _node: credentials)
    try:
        await agent.start()

        async def registered() -> bool:
            nodes, _ = await store.list("Node")
            return any(n.metadata.name == "n1" and n.status.get("lastHeartbeatTime") for n in nodes)

        await eventually(registered, what="node n1 registered through the discovered API server")
        assert agent.config.registration is not None
        assert agent.config.registration.api.server == live.secure_url
    finally:
        await agent.stop()
        await registration.close()


async def test_agent_heartbeats_move_when_their_api_server_dies(etcd: Etcd, store: ObjectStore,
                                                                dns_server: DnsServer, two_apis: list[ApiThread],
                                                                pki_home: HomePaths) -> None:
    first, second = two_apis
    assert first.server is not None and second.server is not None
    preferred = await register_api_server(etcd, ZONE, "127.0.0.1", first.server.secure_port, ttl=60, priority=10)
    other = await register_api_server(etcd, ZONE, "127.0.0.1", second.server.secure_port, ttl=60, priority=20)
    configured = f"https://127.0.0.1:{free_port()}"

    def connect(url: str) -> ApiClient:
        return ApiClient(url, ca=pki_home.ca_cert, cert=pki_home.cert("node-n1"), key=pki_home.key("node-n1"),
                         timeout=5.0)

    async def discover() -> str:
        return await pick_api_server(configured, f"127.0.0.1:{dns_server.port}", ZONE)

    registration = NodeRegistration(connect(configured), "n1", "127.0.0.1:1", {}, "simulated", interval=0.2,
                                    discover=discover, connect=connect)
    task = asyncio.create_task(registration.run(), name="registration-n1")
    try:
        await eventually(lambda: _beats(registration, first.secure_url, 0), what="heartbeats through the first")
        await preferred.close(revoke=False)  # crashes: no withdrawal
        first.stop()
        await eventually(lambda: _beats(registration, second.secure_url, -1), what="a switch to the second")
        switched_at = registration.heartbeats  # the first is dead: every heartbeat from now on went to the second
        await eventually(lambda: _beats(registration, second.secure_url, switched_at), what="heartbeats there")
        node = await store.get("Node", "", "n1")
        assert node.status["conditions"][0]["status"] == "True"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await registration.close()
        await preferred.close()
        await other.close()


async def _beats(registration: NodeRegistration, url: str, more_than: int) -> bool:
    """True once ``registration`` talks to ``url`` and has sent more than ``more_than`` heartbeats in all."""
    return registration.api.server == url and registration.heartbeats > more_than
