"""DNS fixtures: the DNS server in-process on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from persys.dns import DnsServer
from persys.store import Etcd
from persys.store.server import free_port

ZONE = "persys.local"


@pytest.fixture
async def dns_server(etcd: Etcd) -> AsyncIterator[DnsServer]:
    server = DnsServer(etcd, ZONE, "127.0.0.1", free_port())
    await server.start()
    assert server.cache.ready.is_set()
    yield server
    await server.close()
    left = [t for t in asyncio.all_tasks() if t.get_name() in {"dns", "dns/watch", "dns-supervisor"}]
    assert not left, "DNS tasks left behind"
