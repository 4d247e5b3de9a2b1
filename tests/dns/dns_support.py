"""Asking the DNS server under test (polling with a deadline is ``tests.support.eventually``)."""

from __future__ import annotations

import dns.asyncquery
import dns.message
import dns.rcode

from persys.dns import DnsServer


async def ask(server: DnsServer, name: str, rdtype: str, *, tcp: bool = False, edns: bool = False
              ) -> dns.message.Message:
    """One query to ``server`` over UDP (or TCP)."""
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    if tcp:
        return await dns.asyncquery.tcp(query, "127.0.0.1", timeout=5, port=server.port)
    return await dns.asyncquery.udp(query, "127.0.0.1", timeout=5, port=server.port)


def rcode(response: dns.message.Message) -> str:
    return dns.rcode.to_text(response.rcode())
