"""The API servers behind the gateway, and the proxying of one request to them.

Servers are found by DNS SRV ``_persys-api._tcp.<zone>`` (``persys.client.discovery``), then the
configured ones; the list is looked up again every ``refresh`` seconds. A request goes to the first
server that takes it, under the gateway's client certificate, with the caller's identity in the
``Impersonate-User`` and ``Impersonate-Group`` headers (those a caller sent are dropped: only the
gateway says who a request is for). A request that found no server listening moves on to the next
one whatever its method (nothing was sent); one whose server died after it was sent moves on only
when it is idempotent (GET, HEAD, OPTIONS, PUT, DELETE), as a retry could not do it twice.
Responses stream through unbuffered, so a watch or ``logs -f`` reaches the caller line by line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from persys.client.discovery import api_server_candidates
from persys.errors import Unavailable
from persys.observability.logging import get_logger
from persys.security.tls import client_context

log = get_logger("gateway.upstream")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "content-length"})
DROPPED = HOP_BY_HOP | {"authorization", "cookie"}
IMPERSONATE_USER = "Impersonate-User"
WHOLE_BODY = 1024 * 1024  # answers up to this size (with a Content-Length) are relayed in one piece; the rest stream
IMPERSONATE_GROUP = "Impersonate-Group"


def outgoing_headers(incoming: CIMultiDict[str] | web.Request, user: str, groups: Sequence[str],
                     peer: str) -> CIMultiDict[str]:
    """The headers sent upstream: the caller's, less hop-by-hop, credentials and any ``Impersonate-*``,
    plus the gateway's impersonation of ``user`` and ``groups`` and ``X-Forwarded-For``."""
    source = incoming.headers if isinstance(incoming, web.Request) else incoming
    headers: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in source.items()
        if k.lower() not in DROPPED and not k.lower().startswith("impersonate-"))
    headers[IMPERSONATE_USER] = user
    for group in groups:
        headers.add(IMPERSONATE_GROUP, group)
    forwarded = source.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
    return headers


class Upstreams:
    """Picks API servers and forwards requests to them."""

    def __init__(self, servers: Sequence[str], *, ca: Path, cert: Path, key: Path, dns: str | None = None,
                 zone: str = "persys.local", refresh: float = 10.0, connect_timeout: float = 3.0) -> None:
        if not servers:
            raise ValueError("the gateway needs at least one API server URL (--server)")
        self.servers = [s.rstrip("/") for s in servers]
        self.dns, self.zone, self.refresh = dns, zone, refresh
        self.connect_timeout = connect_timeout
        self._ssl = client_context(ca, cert, key)
        self._session: aiohttp.ClientSession | None = None
        self._found: list[str] = []
        self._found_at = float("-inf")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=256), auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def candidates(self) -> list[str]:
        """The API servers to try, best first: the discovered ones, then the configured ones."""
        if time.monotonic() - self._found_at > self.refresh:
            found = await api_server_candidates(self.servers[0], self.dns, self.zone) if self.dns else []
            self._found = list(dict.fromkeys([*found, *self.servers]))
            self._found_at = time.monotonic()
        return self._found

    async def forward(self, request: web.Request, user: str, groups: Sequence[str]) -> web.StreamResponse:
        """Proxy ``request`` for ``user``; its response streamed back as it comes."""
        body = await request.read() if request.can_read_body else None
        headers = outgoing_headers(request, user, groups, request.remote or "")
        tried: list[str] = []
        for server in await self.candidates():
            tried.append(server)
            try:
                upstream = await self._http().request(request.method, server + str(request.rel_url), data=body,
                                                      headers=headers, allow_redirects=False)
            except aiohttp.ClientConnectorError as e:  # nothing was sent: any request may go elsewhere
                log.warning("API server unreachable; trying the next", server=server, error=str(e))
                continue
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                if request.method not in IDEMPOTENT:
                    raise Unavailable(f"API server {server} failed during a {request.method}, which is not "
                                      f"retried as it may have been done: {e}") from e
                log.warning("API server failed; retrying the request on the next", server=server, error=str(e))
                continue
            try:
                return await _relay(request, upstream)
            finally:
                upstream.release()
        raise Unavailable(f"no API server answered: tried {', '.join(tried)}")


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    headers = [(name, value) for name, value in upstream.headers.items() if name.lower() not in HOP_BY_HOP]
    length = upstream.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) <= WHOLE_BODY:
        # a whole answer of known size (most are): one write, no chunked framing
        whole = web.Response(status=upstream.status, reason=upstream.reason, body=await upstream.read())
        whole.headers.extend(headers)
        return whole
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(headers)
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
        log.info("API server closed the stream", path=request.path, error=str(e))
    await response.write_eof()
    return response
