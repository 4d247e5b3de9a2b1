"""The HTTP edge the API server and the agent share: JSON bodies in, errors out as ``Status``.

Both servers are aiohttp applications that answer every failure the same way, so that lives
here once: ``read_json`` turns a request body into JSON or a ``BadRequest`` / ``TooLarge`` (a
body nested deeper than ``MAX_DEPTH`` is refused before any handler recurses into it);
``error_middleware`` catches what a handler raises, turns aiohttp's own refusals (no route,
wrong method, body too large) into Persys errors, and answers with ``respond``: a ``Status``
body whose code is the error class's ``code``. Anything that is not a ``PersysError``
(``TerminalError`` included) is an internal error: 500, logged, naming only the exception's type.

Every listener in Persys (the API's plain and mTLS ones, the agent's, the controllers' and the supervisor's
metrics and health) is made by ``app_runner`` and ``GuardedSite`` under one ``ListenerLimits``: a connection must
deliver its request headers within a deadline, an idle one is closed, and a listener holds a bounded number of
connections, so that clients which connect and then say nothing cannot pile up (a slowloris).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import json
import re
import resource
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from persys import jsoncodec
from persys.errors import BadRequest, MethodNotAllowed, NotFound, PersysError, TooLarge

MAX_DEPTH = 64  # manifests nest about 8 deep; this leaves room and stays far from the recursion limit



def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer, encoded by orjson (``persys.jsoncodec``)."""
    return web.Response(body=jsoncodec.dumps(data), status=status, headers=headers, content_type="application/json")

def respond(error: BaseException) -> web.Response:
    """The JSON ``Status`` response for ``error``: its class's code, or 500 for a non-Persys error."""
    if not isinstance(error, PersysError):
        error = PersysError(f"internal error: {type(error).__name__}")
    return json_response(error.to_status(), status=error.code)


def error_middleware(log: Any, no_route: Callable[[web.Request], str]) -> Middleware:
    """The middleware that answers every failure with ``respond``; ``no_route`` words the 404."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except PersysError as e:
            if e.code >= 500:
                log.warning("request failed", method=request.method, path=request.path, error=e.message)
            return respond(e)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return respond(http_error(e, request, no_route=no_route(request)))
        except ConnectionError:
            raise  # the client went away mid-stream: there is nobody to answer
        except Exception as e:
            log.exception("internal error", method=request.method, path=request.path)
            return respond(e)

    return errors


def http_error(e: web.HTTPException, request: web.Request, *, no_route: str) -> PersysError:
    """The Persys error for an HTTP error aiohttp raised itself; ``no_route`` is the 404's message."""
    if isinstance(e, web.HTTPNotFound):
        return NotFound(no_route)
    if isinstance(e, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(e.allowed_methods))
        return MethodNotAllowed(f"method {e.method} not allowed here; allowed: {allowed}")
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return TooLarge(f"request body exceeds {request.client_max_size} bytes")
    if e.status < 500:
        return BadRequest(e.text or e.reason)
    return PersysError(e.reason)


async def read_json(request: web.Request, what: str = "request body") -> Any:
    """The request's body decoded as JSON; ``None`` when it is empty."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise TooLarge(f"{what} exceeds {request.client_max_size} bytes") from e
    return decode_json(raw, what) if raw.strip() else None


def decode_json(raw: bytes | str, what: str = "request body") -> Any:
    """``raw`` as JSON; ``BadRequest`` when it is not JSON or nests deeper than ``MAX_DEPTH``."""
    try:
        data = json.loads(raw)
    except RecursionError as e:  # the C decoder stops at the interpreter's limit, cleanly
        raise BadRequest(f"{what} nests deeper than {MAX_DEPTH} levels") from e
    except ValueError as e:
        raise BadRequest(f"{what} is not valid JSON: {e}") from e
    if _depth_exceeds(data, MAX_DEPTH):
        raise BadRequest(f"{what} nests deeper than {MAX_DEPTH} levels")
    return data


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists and objects more than ``limit`` deep (iterative: no recursion)."""
    level: list[Any] = [data]
    for _ in range(limit):
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not level:
            return False
    return any(isinstance(node, (dict, list)) for node in level)


def is_digits(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits (a resourceVersion, a line count).

    ``str.isdigit()`` alone also takes '²' and '１', which ``int()`` refuses or misreads: a check with it lets
    a ValueError through, and the client gets a 500 for its own mistake."""
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class ListenerLimits:
    """What one listener allows a connection, and how many it keeps open (every Persys listener uses these).

    - ``header_timeout`` (10 s): from accept to complete request headers, TLS handshake included. A client
      sends its request line and headers in milliseconds; a connection still silent (or half a header in)
      after ten seconds is a stalled client or a slowloris, and is closed.
    - ``idle_timeout`` (20 s): between requests on a kept-alive connection, and the bound on a later
      request's headers too (aiohttp's keep-alive timer). Longer than the 15 s for which aiohttp's client
      (``ApiClient``, ``AgentClient``) keeps an idle pooled connection, so that the client closes first and
      never sends a request down a connection the server is closing.
    - ``max_connections`` (2048): open connections per listener, those in their TLS handshake included. A
      100-node cluster holds about 150 against its API (one pooled connection per agent, a watch per
      informer, CLIs); dashboards and tools watching add one per watch, and 2,048 leaves room for a
      thousand of those. A listener starts by raising the process's soft limit on open files to its hard
      limit (as Go's runtime does), and takes fewer connections than this when that limit is low: half of
      what the limit leaves after ``RESERVED_FILES``, so that two listeners fit. Above it a new connection
      gets a 503 and is closed at once.
    - ``backlog`` (128): connections the kernel queues before the server accepts them (aiohttp's default).
    """

    header_timeout: float = 10.0
    idle_timeout: float = 20.0
    max_connections: int = 2048
    backlog: int = 128


LIMITS = ListenerLimits()
RESERVED_FILES = 256  # descriptors kept for etcd, Docker, logs and the rest of the process
TLS_READ_BUFFER = 32 * 1024  # what asyncio reads a TLS connection with, at most (two full TLS records)


def open_files_limit() -> int:
    """The soft limit on open files, raised to the hard limit first when it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(limits: ListenerLimits, open_files: int) -> int:
    """How many connections one listener takes: ``max_connections``, or fewer when ``open_files`` is low."""
    return max(1, min(limits.max_connections, (open_files - RESERVED_FILES) // 2))


def shrink_tls_read_buffer() -> None:
    """Read TLS connections in ``TLS_READ_BUFFER`` chunks instead of asyncio's 256 KiB.

    asyncio's ``SSLProtocol`` gives every TLS connection a read buffer of ``max_size`` (256 KiB since Python
    3.11) for its whole life; with idle watches that buffer was ~85% of a connection's memory
    (``bench/watches.py``). A TLS record carries at most 16 KiB, so 32 KiB reads lose nothing."""
    protocol = getattr(asyncio.sslproto, "SSLProtocol", None)
    if protocol is not None and getattr(protocol, "max_size", 0) > TLS_READ_BUFFER:
        protocol.max_size = TLS_READ_BUFFER
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"


def app_runner(app: web.Application, limits: ListenerLimits = LIMITS, **kwargs: Any) -> web.AppRunner:
    """An ``AppRunner`` for ``app`` whose idle connections close after ``limits.idle_timeout``."""
    return web.AppRunner(app, keepalive_timeout=limits.idle_timeout, **kwargs)


class GuardedSite(web.BaseSite):
    """A TCP listener (``web.TCPSite``'s job) that enforces ``ListenerLimits`` on every connection it accepts."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ListenerLimits = LIMITS, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=limits.backlog)
        self.host, self.port, self.limits = host, port, limits
        if ssl_context is not None:
            shrink_tls_read_buffer()

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        cap = connection_cap(self.limits, open_files_limit())
        self._server = await asyncio.get_running_loop().create_server(
            _Gate(server, self.limits, cap), self.host, self.port, ssl=self._ssl_context, backlog=self.limits.backlog,
            ssl_handshake_timeout=self.limits.header_timeout if self._ssl_context else None)


class _Gate:
    """The protocol factory of one listener: a ``_Guarded`` connection while fewer than ``cap`` are open, else
    one that answers 503 and closes."""

    def __init__(self, protocols: Callable[[], asyncio.BaseProtocol], limits: ListenerLimits, cap: int) -> None:
        self.protocols, self.limits, self.cap = protocols, limits, cap
        self.open: set[_Guarded] = set()

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self.open) >= self.cap:
            return _Busy()
        connection = _Guarded(self.protocols(), self)
        self.open.add(connection)
        return connection

    def release(self, connection: _Guarded) -> None:
        self.open.discard(connection)


class _Busy(asyncio.Protocol):
    """A connection over the limit: told 503 and closed, never handed to the application."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


class _Guarded(asyncio.Protocol):
    """One connection, passed through to aiohttp's protocol until its first request's headers have arrived,
    and closed (or, still in its TLS handshake, given up: asyncio ends that at the same time) if they have not
    by ``header_timeout`` after accept. Counted open in its gate until it is lost or given up."""

    def __init__(self, inner: asyncio.BaseProtocol, gate: _Gate) -> None:
        assert isinstance(inner, asyncio.Protocol)
        self.inner, self.gate = inner, gate
        self.transport: asyncio.Transport | None = None
        self.made = False  # whether aiohttp's protocol has the connection
        self.tail = b""  # the last bytes seen, while the end of the headers is not: it may span two reads
        self.deadline: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            gate.limits.header_timeout, self._expire)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.deadline is None:  # its TLS handshake outlasted the deadline: aiohttp never sees it
            transport.abort()
            return
        self.inner.connection_made(transport)
        self.made = True

    def data_received(self, data: bytes) -> None:
        if self.deadline is not None:
            seen = self.tail + data
            if _HEADER_END.search(seen):
                self.deadline.cancel()
                self.deadline = None
            self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.gate.release(self)
        if self.made:
            self.inner.connection_lost(exc)

    def _expire(self) -> None:
        self.deadline = None
        if self.transport is None:
            self.gate.release(self)  # no connection_lost follows a handshake that never completes
        else:
            self.transport.abort()
