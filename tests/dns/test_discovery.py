"""API servers announce themselves as SRV records on etcd leases; clients discover the live ones. A keep-alive
that dies turns the API server's /healthz red, naming it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from dns_support import ask, rcode

from persys.api import ApiContext, ApiServer
from persys.api.server import tls_from_home
from persys.client.discovery import api_server_candidates, discover_api_servers, pick_api_server
from persys.dns import DnsServer, register_api_server
from persys.runtime.supervisor import Supervisor
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import free_port
from tests.support.cluster import pki_home  # noqa: F401
from tests.support.eventually import eventually

ZONE = "persys.local"


def address(server: DnsServer) -> str:
    return f"127.0.0.1:{server.port}"


async def test_two_servers_one_expires(etcd: Etcd, dns_server: DnsServer) -> None:
    first = await register_api_server(etcd, ZONE, "127.0.0.1", 17443, ttl=2, priority=10)
    second = await register_api_server(etcd, ZONE, "127.0.0.1", 27443, ttl=2, priority=20)
    try:
        async def both() -> bool:
            return await discover_api_servers(address(dns_server), ZONE) == [
                "https://127.0.0.1:17443", "https://127.0.0.1:27443"]

        await eventually(both)
        srv = await ask(dns_server, "_persys-api._tcp.persys.local", "SRV")
        assert {rd.port for rrset in srv.answer for rd in rrset} == {17443, 27443}
        # first "crashes": it stops refreshing its lease, and nobody deletes its record
        await first.close(revoke=False)

        async def only_second() -> bool:
            return await discover_api_servers(address(dns_server), ZONE) == ["https://127.0.0.1:27443"]

        await eventually(only_second, timeout=15)
        # second stays: its keep-alive outlives several lease TTLs
        assert await discover_api_servers(address(dns_server), ZONE) == ["https://127.0.0.1:27443"]
    finally:
        await first.close()
        await second.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("dns-registration")]


async def test_close_withdraws_at_once(etcd: Etcd, dns_server: DnsServer) -> None:
    registration = await register_api_server(etcd, ZONE, "127.0.0.1", 7443)
    await eventually(lambda: discover_api_servers(address(dns_server), ZONE))
    await registration.close()

    async def gone() -> bool:
        response = await ask(dns_server, "_persys-api._tcp.persys.local", "SRV")
        return rcode(response) == "NXDOMAIN"

    await eventually(gone)
    assert await discover_api_servers(address(dns_server), ZONE) == []


async def test_fallback_when_discovery_fails(etcd: Etcd, dns_server: DnsServer) -> None:
    configured = "https://127.0.0.1:7443"
    nobody = f"127.0.0.1:{free_port()}"
    assert await api_server_candidates(configured, nobody, ZONE, timeout=0.5) == [configured]
    assert await api_server_candidates(configured, None, ZONE) == [configured]
    assert await api_server_candidates(configured, address(dns_server), ZONE) == [configured]

    registration = await register_api_server(etcd, ZONE, "127.0.0.1", 17443)
    try:
        await eventually(lambda: discover_api_servers(address(dns_server), ZONE))
        assert await api_server_candidates(configured, address(dns_server), ZONE) == [
            "https://127.0.0.1:17443", configured]
        tried: list[str] = []

        async def probe(url: str) -> bool:
            tried.append(url)
            return url == configured

        assert await pick_api_server(configured, address(dns_server), ZONE, probe=probe) == configured
        assert tried == ["https://127.0.0.1:17443", configured]

        async def accept_all(url: str) -> bool:
            return True

        assert await pick_api_server(configured, address(dns_server), ZONE, probe=accept_all) == \
            "https://127.0.0.1:17443"
    finally:
        await registration.close()


async def test_a_dead_keepalive_turns_the_api_healthz_red(etcd: Etcd, pki_home: HomePaths,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    api = ApiServer(ApiContext(etcd), tls_from_home(pki_home.home), listen=("127.0.0.1", 0),
                    secure_listen=("127.0.0.1", 0), extra_routes=[])

    async def refresh_fails(lease: int) -> int:  # a bug, not an etcd outage: the keep-alive loop dies of it
        raise RuntimeError("lease table corrupt")

    async with Supervisor("api", backoff=(0.05, 0.2), stable_after=0.3) as supervisor:  # as `persys server` runs
        await api.start(supervisor)
        registration = await register_api_server(etcd, ZONE, "127.0.0.1", api.secure_port, ttl=3,
                                                 supervisor=supervisor)
        monkeypatch.setattr(etcd, "refresh_lease", refresh_fails)
        url = f"{api.plain_url}/healthz"
        await eventually(lambda: _healthz(url, 503), timeout=15)
        body = await _healthz(url, 503)
        assert body is not None and body["failing"][0]["task"] == "dns-registration/keepalive"
        assert "RuntimeError: lease table corrupt" in body["reason"]
        monkeypatch.undo()
        await eventually(lambda: _healthz(url, 200), timeout=15)
    assert await etcd.get(registration.record.key) is None  # withdrawn on the way out


async def _healthz(url: str, status: int) -> dict[str, Any] | None:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        body: dict[str, Any] = await response.json()
        return body if response.status == status else None
