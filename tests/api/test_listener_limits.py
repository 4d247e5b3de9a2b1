"""Every listener closes connections that send no request, closes idle ones, and holds a bounded number.

Run against the API's own listeners (``ApiServer`` with short ``ListenerLimits``) over raw TCP, as a
slowloris would connect: nothing sent, half a header, a TLS port never greeted. The other listeners
(agent, controllers' metrics, supervisor's status) are made by the same ``httpedge`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator

import pytest

from persys.api import ApiContext, ApiServer
from persys.api.server import tls_from_home
from persys.httpedge import RESERVED_FILES, ListenerLimits, connection_cap, open_files_limit
from persys.security.paths import HomePaths
from persys.store import Etcd
from tests.support.eventually import eventually

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: persys\r\n\r\n"
SLACK = 5.0  # seconds beyond a timeout before the test gives up waiting for the close


@contextlib.asynccontextmanager
async def api_server(etcd: Etcd, pki_home: HomePaths, limits: ListenerLimits) -> AsyncIterator[ApiServer]:
    server = ApiServer(ApiContext(etcd), tls_from_home(pki_home.home), listen=("127.0.0.1", 0),
                       secure_listen=("127.0.0.1", 0), extra_routes=(), limits=limits)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it has not closed ``within`` seconds."""
    async with asyncio.timeout(within):
        with contextlib.suppress(ConnectionResetError):
            return await reader.read()
    return b""


async def served(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The status line of ``GET /healthz`` asked on an open connection."""
    writer.write(HEALTHZ)
    async with asyncio.timeout(SLACK):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
    return head.split(b"\r\n")[0]


async def healthy(port: int) -> bool:
    """Whether a new connection to ``port`` is served (not refused with a 503)."""
    async with connection(port) as (reader, writer):
        return (await served(reader, writer)).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: persys\r\n"], ids=["nothing", "half a header"])
async def test_a_connection_without_request_headers_is_closed(etcd: Etcd, pki_home: HomePaths, sent: bytes) -> None:
    limits = ListenerLimits(header_timeout=0.5, idle_timeout=60.0)  # the header deadline, not the idle one
    async with api_server(etcd, pki_home, limits) as server, connection(server.plain_port) as (reader, writer):
        writer.write(sent)
        assert await closed_by_server(reader, limits.header_timeout + SLACK) == b""


async def test_a_tls_connection_never_greeted_is_closed(etcd: Etcd, pki_home: HomePaths) -> None:
    limits = ListenerLimits(header_timeout=0.5, idle_timeout=60.0)
    async with api_server(etcd, pki_home, limits) as server, connection(server.secure_port) as (reader, _):
        await closed_by_server(reader, limits.header_timeout + SLACK)


async def test_a_served_connection_outlives_the_header_deadline_and_closes_when_idle(etcd: Etcd,
                                                                                   pki_home: HomePaths) -> None:
    limits = ListenerLimits(header_timeout=0.5, idle_timeout=2.0)
    async with api_server(etcd, pki_home, limits) as server, connection(server.plain_port) as (reader, writer):
        assert (await served(reader, writer)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(limits.header_timeout * 2)
        assert (await served(reader, writer)).startswith(b"HTTP/1.1 200")  # kept alive, past the header deadline
        assert await closed_by_server(reader, limits.idle_timeout + SLACK) == b""


async def test_connections_above_the_limit_are_refused_at_once(etcd: Etcd, pki_home: HomePaths) -> None:
    limits = ListenerLimits(max_connections=3, header_timeout=60.0)
    async with api_server(etcd, pki_home, limits) as server, contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(connection(server.plain_port)) for _ in range(limits.max_connections)]
        async with connection(server.plain_port) as (reader, _):
            assert (await closed_by_server(reader, SLACK)).startswith(b"HTTP/1.1 503")
        assert (await served(*held[0])).startswith(b"HTTP/1.1 200")  # the ones held are served
        held.pop()[1].close()
        await eventually(lambda: healthy(server.plain_port), SLACK, "a connection served once one is closed")


@pytest.mark.parametrize(("max_connections", "open_files", "cap"), [
    (2048, 1 << 20, 2048),  # a high limit: the configured number
    (2048, 1024, (1024 - RESERVED_FILES) // 2),  # Debian's usual soft limit, if it cannot be raised: 384
    (2048, RESERVED_FILES + 4, 2),  # two listeners still fit
    (2048, 10, 1),  # never none
    (3, 20000, 3),
])
def test_a_listener_takes_no_more_connections_than_the_open_files_limit_leaves(
        max_connections: int, open_files: int, cap: int) -> None:
    assert connection_cap(ListenerLimits(max_connections=max_connections), open_files) == cap


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lower = min(soft, 4096) // 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (lower, hard))
    try:
        assert open_files_limit() == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
