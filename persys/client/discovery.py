"""Finding API servers through DNS SRV ``_persys-api._tcp.<zone>``, with the configured URL as fallback.

The CLI and the agents ask the cluster DNS (``persys dns``) for the API servers that are
alive (each registers itself on an etcd lease), try them in priority order and fall back
to the address in their configuration when discovery fails, so that DNS is a convenience and
never a single point of failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from persys.errors import Unavailable
from persys.observability.logging import get_logger

log = get_logger("discovery")

API_SERVICE = "_persys-api._tcp"

Probe = Callable[[str], Awaitable[bool]]


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "53")
    if not port.isdigit():
        raise Unavailable(f"DNS server address {address!r} is not HOST:PORT")
    return (host.strip("[]") or "127.0.0.1"), int(port)


async def _query(dns_server: str, name: str, rdtype: dns.rdatatype.RdataType, timeout: float) -> dns.message.Message:
    host, port = _split(dns_server)
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    try:
        response = await dns.asyncquery.udp(query, host, timeout=timeout, port=port)
        if response.flags & dns.flags.TC:
            response = await dns.asyncquery.tcp(query, host, timeout=timeout, port=port)
    except (dns.exception.DNSException, OSError) as e:
        raise Unavailable(f"DNS server {dns_server} did not answer {name} {rdtype.name}: "
                          f"{type(e).__name__}: {e}") from e
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise Unavailable(f"DNS server {dns_server} answered {dns.rcode.to_text(rcode)} for {name}")
    return response


def _addresses(rrsets: list[dns.rrset.RRset], owner: dns.name.Name) -> list[str]:
    return [rd.to_text() for rrset in rrsets if rrset.name == owner
            and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) for rd in rrset]


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


async def discover_api_servers(dns_server: str, zone: str, *, timeout: float = 2.0) -> list[str]:
    """``https://HOST:PORT`` of every API server registered in ``zone``, best first.

    Sorted by SRV priority (lower first), then weight (higher first). An empty list when none
    is registered; raises Unavailable when the DNS server does not answer properly.
    """
    name = f"{API_SERVICE}.{zone.rstrip('.')}."
    response = await _query(dns_server, name, dns.rdatatype.SRV, timeout)
    ranked: list[tuple[int, int, str]] = []
    for rrset in response.answer:
        if rrset.rdtype != dns.rdatatype.SRV:
            continue
        for srv in rrset:
            hosts = _addresses(response.additional, srv.target)
            if not hosts:
                answer = await _query(dns_server, srv.target.to_text(), dns.rdatatype.A, timeout)
                hosts = _addresses(answer.answer, srv.target) or [srv.target.to_text(omit_final_dot=True)]
            ranked.extend((srv.priority, -srv.weight, _url(host, srv.port)) for host in hosts)
    return list(dict.fromkeys(url for _, _, url in sorted(ranked)))


async def api_server_candidates(configured: str, dns_server: str | None, zone: str, *,
                                timeout: float = 2.0) -> list[str]:
    """The discovered API servers, best first, then ``configured``; just ``configured`` when discovery fails."""
    if not dns_server:
        return [configured]
    try:
        found = await discover_api_servers(dns_server, zone, timeout=timeout)
    except Unavailable as e:
        log.debug("discovery.failed", dns_server=dns_server, zone=zone, error=str(e), fallback=configured)
        return [configured]
    if not found:
        log.debug("discovery.none_registered", dns_server=dns_server, zone=zone, fallback=configured)
    return list(dict.fromkeys([*found, configured]))


async def tcp_probe(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 443), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def pick_api_server(configured: str, dns_server: str | None, zone: str, *,
                          probe: Probe = tcp_probe, timeout: float = 2.0) -> str:
    """The first candidate (see ``api_server_candidates``) that ``probe`` accepts, else ``configured``."""
    for url in await api_server_candidates(configured, dns_server, zone, timeout=timeout):
        if await probe(url):
            if url != configured:
                log.debug("discovery.picked", url=url)
            return url
        log.debug("discovery.unreachable", url=url)
    log.debug("discovery.fallback", url=configured)
    return configured
