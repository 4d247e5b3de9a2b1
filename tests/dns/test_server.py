"""The DNS server against a real etcd: A, SRV, SOA, NXDOMAIN/NODATA, REFUSED, truncation, live updates,
and a watch that dies: /healthz red, naming it, until the restarted watch has relisted and run a while."""

from __future__ import annotations

from typing import Any

import aiohttp
import dns.flags
import dns.rdatatype
from dns_support import ask, rcode
from prometheus_client import REGISTRY

from persys.dns import DnsServer, SkyRecord, name_to_key
from persys.runtime.supervisor import Supervisor
from persys.store import Etcd
from persys.store.server import EtcdServer, free_port
from tests.support.eventually import eventually


async def put(etcd: Etcd, *records: SkyRecord) -> None:
    for record in records:
        await etcd.put(record.key, record.encode())


def web_records() -> list[SkyRecord]:
    base = name_to_key("web.default.persys.local")
    return [SkyRecord(f"{base}/web-1", "127.0.0.1"),
            SkyRecord(f"{base}/_tcp/_http/web-1", "127.0.0.1", port=18080, targetstrip=3)]


async def test_a_and_srv_with_additional(etcd: Etcd, dns_server: DnsServer) -> None:
    await put(etcd, *web_records())
    await eventually(lambda: len(dns_server.cache) == 2)
    answer = await ask(dns_server, "web.default.persys.local", "A")
    assert rcode(answer) == "NOERROR" and answer.flags & dns.flags.AA
    assert [rd.to_text() for rrset in answer.answer for rd in rrset] == ["127.0.0.1"]
    assert answer.answer[0].ttl == 30

    srv = await ask(dns_server, "_http._tcp.web.default.persys.local", "SRV")
    assert rcode(srv) == "NOERROR"
    assert [rd.to_text() for rrset in srv.answer for rd in rrset] == ["10 10 18080 web.default.persys.local."]
    extra = {(rrset.name.to_text(), rd.to_text()) for rrset in srv.additional
             if rrset.rdtype == dns.rdatatype.A for rd in rrset}
    assert extra == {("web.default.persys.local.", "127.0.0.1")}


async def test_soa_nxdomain_nodata(etcd: Etcd, dns_server: DnsServer) -> None:
    await put(etcd, *web_records())
    await eventually(lambda: len(dns_server.cache) == 2)
    soa = await ask(dns_server, "persys.local", "SOA")
    assert rcode(soa) == "NOERROR" and soa.answer[0].rdtype == dns.rdatatype.SOA

    missing = await ask(dns_server, "nope.default.persys.local", "A")
    assert rcode(missing) == "NXDOMAIN" and not missing.answer
    assert [rrset.rdtype for rrset in missing.authority] == [dns.rdatatype.SOA]

    nodata = await ask(dns_server, "web.default.persys.local", "AAAA")
    assert rcode(nodata) == "NOERROR" and not nodata.answer
    assert [rrset.rdtype for rrset in nodata.authority] == [dns.rdatatype.SOA]
    empty_non_terminal = await ask(dns_server, "default.persys.local", "SRV")
    assert rcode(empty_non_terminal) == "NOERROR"


async def test_refused_outside_the_zone(dns_server: DnsServer) -> None:
    for name in ("example.com", "persys.local.example.com", "local"):
        response = await ask(dns_server, name, "A")
        assert rcode(response) == "REFUSED" and not response.answer
        assert not response.flags & dns.flags.AA


async def test_udp_truncates_tcp_carries_everything(etcd: Etcd, dns_server: DnsServer) -> None:
    base = name_to_key("big.default.persys.local")
    await put(etcd, *[SkyRecord(f"{base}/w{i}", f"127.0.1.{i}") for i in range(1, 61)])
    await eventually(lambda: len(dns_server.cache) == 60)
    udp = await ask(dns_server, "big.default.persys.local", "A")
    assert udp.flags & dns.flags.TC
    tcp = await ask(dns_server, "big.default.persys.local", "A", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert len([rd for rrset in tcp.answer for rd in rrset]) == 60
    roomy = await ask(dns_server, "big.default.persys.local", "A", edns=True)  # 1232-byte buffer: fits
    assert not roomy.flags & dns.flags.TC and len(roomy.answer[0]) == 60


async def test_follows_etcd_changes(etcd: Etcd, dns_server: DnsServer) -> None:
    key = name_to_key("db.default.persys.local") + "/db-1"
    await put(etcd, SkyRecord(key, "127.0.0.2"))

    async def addresses() -> list[str]:
        response = await ask(dns_server, "db.default.persys.local", "A")
        return [rd.to_text() for rrset in response.answer for rd in rrset]

    await eventually(lambda: addresses())
    assert await addresses() == ["127.0.0.2"]
    await put(etcd, SkyRecord(key, "127.0.0.3"))

    async def moved() -> bool:
        return await addresses() == ["127.0.0.3"]

    await eventually(moved)
    await etcd.delete(key)

    async def gone() -> bool:
        return rcode(await ask(dns_server, "db.default.persys.local", "A")) == "NXDOMAIN"

    await eventually(gone)


async def test_bad_records_are_skipped(etcd: Etcd, dns_server: DnsServer) -> None:
    await etcd.put(name_to_key("bad.default.persys.local") + "/x1", b"{not json")
    await put(etcd, *web_records())
    await eventually(lambda: len(dns_server.cache) == 2)
    assert rcode(await ask(dns_server, "bad.default.persys.local", "A")) == "NXDOMAIN"


async def test_counts_queries(dns_server: DnsServer) -> None:
    def refused() -> float:
        return REGISTRY.get_sample_value("persys_dns_queries_total", {"qtype": "A", "rcode": "REFUSED"}) or 0.0

    before = refused()
    await ask(dns_server, "example.com", "A")
    assert refused() == before + 1


async def test_relists_after_etcd_restart(own_etcd: EtcdServer) -> None:
    await own_etcd.start()
    etcd = Etcd(own_etcd.url, timeout=2)
    server = DnsServer(etcd, "persys.local", "127.0.0.1", free_port())
    await server.start()
    try:
        await put(etcd, *web_records())
        await eventually(lambda: len(server.cache) == 2)
        own_etcd.stop()
        still = await ask(server, "web.default.persys.local", "A")  # answers from memory meanwhile
        assert rcode(still) == "NOERROR" and still.answer
        await own_etcd.start()

        async def added() -> bool:
            try:
                await etcd.put(name_to_key("db.default.persys.local") + "/db-1", SkyRecord("", "127.0.0.9").encode())
            except Exception:
                return False
            return True

        await eventually(added, timeout=20)

        async def seen() -> bool:
            return rcode(await ask(server, "db.default.persys.local", "A")) == "NOERROR"

        await eventually(seen, timeout=20)
    finally:
        await server.close()
        await etcd.close()


async def test_a_dead_watch_turns_healthz_red_and_relists_when_restarted(etcd: Etcd) -> None:
    server = DnsServer(etcd, "persys.local", "127.0.0.1", free_port(), metrics_listen=("127.0.0.1", 0))
    working, broken = server.cache._put, True

    def put_record(key: str, value: bytes) -> None:  # a bug in the cache: the watch loop dies of it
        if broken:
            raise RuntimeError("index corrupt")
        working(key, value)

    server.cache._put = put_record  # type: ignore[method-assign]
    async with Supervisor("dns", backoff=(0.05, 0.2), stable_after=0.3) as supervisor:
        await server.start(supervisor)
        assert server.metrics is not None
        url = f"http://127.0.0.1:{server.metrics.port}/healthz"
        await put(etcd, *web_records())
        await eventually(lambda: _healthz(url, 503))
        body = await _healthz(url, 503)
        assert body["component"] == "dns" and body["failing"][0]["task"] == "dns/watch"
        assert "RuntimeError: index corrupt" in body["reason"]
        broken = False
        await eventually(lambda: len(server.cache) == 2)  # the restarted watch listed again
        await eventually(lambda: _healthz(url, 200))


async def _healthz(url: str, status: int) -> dict[str, Any] | None:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        body: dict[str, Any] = await response.json()
        return body if response.status == status else None
