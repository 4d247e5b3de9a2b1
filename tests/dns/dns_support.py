"""Asking the DNS server under test, and polling with a deadline (never asserting wall-clock times)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from persys.dns import DnsServer


async def ask(server: DnsServer, name: str, rdtype: str, *, tcp: bool = False, edns: bool = False
              ) -> dns.message.Message:
    """One query to ``server`` over UDP (or TCP)."""
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    if tcp:
        return await dns.asyncquery.tcp(query, "127.0.0.1", timeout=5, port=server.port)
    return await dns.asyncquery.udp(query, "127.0.0.1", timeout=5, port=server.port)


async def eventually(check: Callable[[], object], deadline: float = 10.0) -> None:
    """Poll the async or sync ``check`` until it returns truthy, failing after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    last: object = None
    while loop.time() < end:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"condition not met within {deadline}s (last: {last!r})")


def rcode(response: dns.message.Message) -> str:
    return dns.rcode.to_text(response.rcode())
