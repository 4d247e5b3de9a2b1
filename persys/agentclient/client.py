"""The client controllers use to drive node agents over HMAC-signed HTTP(S).

Every request is signed (``persys.security.hmac.sign``) for the node the client is meant for, and
carries the caller's W3C ``traceparent``. Over ``https://`` the agent must prove it is that node
before a byte of a request is sent: its certificate must be signed by the cluster CA, cover the
address called, and name the node (CN) with the agents' role (O). Any node may register any
address, so the certificate, not the address, says who answers; plain ``http://`` (hollow nodes)
rests on the signature alone, which the other nodes refuse.

Agent errors come back as ``NotFound`` (404), ``Unauthorized`` (401) or
``AgentError`` carrying the agent's message; an agent that cannot be reached raises
``AgentError("agent … unreachable")``. An ``AgentError`` is a 502 wherever it is answered: to the
API's callers the agent is an upstream that failed, whatever code it used itself.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from opentelemetry.trace import SpanKind
from yarl import URL

from persys.errors import AgentError, NotFound, PersysError, Unauthorized
from persys.observability.tracing import inject, tracer
from persys.security.hmac import sign
from persys.security.keyring import HmacKey
from persys.security.pki import AGENTS, cert_identity
from persys.security.tls import trusting

FINISHED = ("succeeded", "failed")
LONG_POLL_SECONDS = 20.0


class _NodeContext(ssl.SSLContext):
    """A client TLS context that completes handshakes only with node ``node``'s certificate."""

    node = ""


class _NodeBound(ssl.SSLObject):
    """Checks the peer's identity as the handshake ends, before the request is written."""

    def do_handshake(self) -> None:
        super().do_handshake()
        node = self.context.node if isinstance(self.context, _NodeContext) else ""
        name, role = cert_identity(self.getpeercert())
        if name != node or role != AGENTS:
            raise ssl.SSLCertVerificationError(  # (code, message): str() is then the message alone
                ssl.SSL_ERROR_SSL, f"the agent presented the certificate of {name!r} (role {role or 'none'}), "
                                   f"not of node {node!r}")


def node_context(node: str, ca: Path | bytes) -> ssl.SSLContext:
    """A client context trusting the cluster CA ``ca`` (a file, or its certificates as DER bytes) that
    accepts only a certificate with CN ``node`` and O ``persys:agents`` for the address it calls."""
    context = _NodeContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if isinstance(ca, bytes):
        context.load_verify_locations(cadata=ca)
    else:
        trusting(context, ca).load_verify_locations(cafile=str(ca))
    context.node = node
    context.sslobject_class = _NodeBound
    return context


class AgentClient:
    """Talks to the agent of ``node`` at ``base_url`` (``http://HOST:PORT`` or ``https://…``) with key ``key_id``.

    ``https://`` needs ``node`` and the cluster CA ``ca`` (see ``node_context``); every request is
    signed for ``node`` (requests without one, from tools and tests, name no node). With ``keys`` each
    request is signed with the key it answers then (the keyring's signing key, which rotation changes)
    instead of ``key_id`` and ``secret``.
    """

    def __init__(self, base_url: str, key_id: str, secret: bytes, timeout: float = 10.0, *,
                 node: str = "", ca: Path | bytes | None = None, keys: Callable[[], HmacKey] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        self.secret = secret
        self.keys = keys
        self.timeout = timeout
        self.node = node
        self._tls = self._verifying(ca) if self.base_url.startswith("https://") else None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_node(cls, node: str, address: str, keys: Callable[[], HmacKey], *, ca: Path | bytes | None,
                 timeout: float = 10.0) -> AgentClient:
        """The client of ``node``'s agent at its Node's ``spec.address`` (``HOST:PORT`` is plain HTTP), signing
        with the key ``keys()`` answers at each request."""
        url = address if address.startswith(("http://", "https://")) else f"http://{address}"
        key = keys()
        return cls(url, key.id, key.secret, timeout, node=node, ca=ca, keys=keys)

    def _verifying(self, ca: Path | bytes | None) -> ssl.SSLContext:
        if not self.node or ca is None:
            raise AgentError(f"agent {self.base_url}: https needs the node's name and the cluster CA")
        try:
            return node_context(self.node, ca)
        except (OSError, ssl.SSLError) as e:
            raise AgentError(f"agent {self.base_url}: cannot load the cluster CA: {e}") from e

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=32, ssl=self._tls if self._tls is not None else True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _unreachable(self, e: Exception) -> AgentError:
        if isinstance(e, aiohttp.ClientConnectorCertificateError):
            return AgentError(f"agent {self.base_url} is not verified as node {self.node!r}: {e.certificate_error}")
        return AgentError(f"agent {self.base_url} unreachable: {e or type(e).__name__}")

    def _signed(self, method: str, path_qs: str, body: bytes) -> dict[str, str]:
        key = HmacKey(self.key_id, self.secret) if self.keys is None else self.keys()
        headers = {"Authorization": sign(method, path_qs, body, key.id, key.secret, node=self.node)}
        if body:
            headers["Content-Type"] = "application/json"
        inject(headers)
        return headers

    def _url(self, path_qs: str) -> URL:
        # encoded=True: the bytes on the wire are exactly the ones that were signed
        return URL(self.base_url + path_qs, encoded=True)

    async def _call(self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None,
                    timeout: float | None = None) -> Any:
        path_qs = path + (f"?{urlencode(params)}" if params else "")
        data = json.dumps(body).encode() if body is not None else b""
        with tracer("persys.agentclient").start_as_current_span(
                f"agent.call {method}", kind=SpanKind.CLIENT,
                attributes={"http.method": method, "url.path": path, "server.address": self.base_url}):
            return await self._send(method, path_qs, data, timeout)

    async def _send(self, method: str, path_qs: str, data: bytes, timeout: float | None) -> Any:
        try:
            async with self._http().request(
                    method, self._url(path_qs), data=data or None, headers=self._signed(method, path_qs, data),
                    timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise _error(resp.status, text, self.base_url)
                if resp.content_type == "application/json":
                    return json.loads(text)
                return text
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._unreachable(e) from e

    async def _stream(self, path: str, params: Mapping[str, Any] | None = None) -> AsyncIterator[bytes]:
        path_qs = path + (f"?{urlencode(params)}" if params else "")
        try:
            async with self._http().get(self._url(path_qs), headers=self._signed("GET", path_qs, b""),
                                        timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
                                        ) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.text(), self.base_url)
                async for line in resp.content:
                    yield line
        except (aiohttp.ClientError, TimeoutError) as e:
            raise self._unreachable(e) from e

    # -- changes: each answers an operation id ------------------------------------------------

    async def apply(self, workload: dict[str, Any]) -> str:
        """Queue create-or-replace of ``workload`` (a Workload resource dict with metadata.uid)."""
        uid = str((workload.get("metadata") or {}).get("uid") or "")
        if not uid:
            raise AgentError("workload has no metadata.uid")
        return str((await self._call("POST", _workload_path(uid), body=workload))["operation"])

    async def stop(self, uid: str) -> str:
        return str((await self._call("POST", _workload_path(uid, "stop")))["operation"])

    async def start(self, uid: str) -> str:
        return str((await self._call("POST", _workload_path(uid, "start")))["operation"])

    async def restart(self, uid: str) -> str:
        return str((await self._call("POST", _workload_path(uid, "restart")))["operation"])

    async def remove(self, uid: str) -> str:
        return str((await self._call("DELETE", _workload_path(uid)))["operation"])

    # -- reads ----------------------------------------------------------------------------

    async def list(self) -> list[dict[str, Any]]:
        """The actual state of every workload on the node."""
        return list((await self._call("GET", "/v1/workloads"))["items"])

    async def get(self, uid: str) -> dict[str, Any]:
        return dict(await self._call("GET", _workload_path(uid)))

    async def logs(self, uid: str, tail: int = 50) -> str:
        return str(await self._call("GET", _workload_path(uid, "logs"), params={"tail": tail}))

    async def follow_logs(self, uid: str, tail: int = 50) -> AsyncIterator[str]:
        """Log lines as they are written, until the workload is gone or the caller stops."""
        async for line in self._stream(_workload_path(uid, "logs"), {"tail": tail, "follow": 1}):
            yield line.decode(errors="replace")

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """State events: first the current state of every workload, then each change."""
        async for line in self._stream("/v1/events"):
            if line.strip():
                yield json.loads(line)

    async def operation(self, op_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/v1/operations/{quote(op_id, safe='')}"))

    async def wait(self, op_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The operation once succeeded or failed (long-polls the agent); AgentError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            wait = max(min(remaining, LONG_POLL_SECONDS), 0.0)
            op = dict(await self._call("GET", f"/v1/operations/{quote(op_id, safe='')}",
                                       params={"wait": f"{wait:.3f}"}, timeout=wait + self.timeout))
            if op.get("state") in FINISHED:
                return op
            if remaining <= 0:
                raise AgentError(f"operation {op_id} still {op.get('state')} after {timeout:g}s")
            await asyncio.sleep(0)

    async def healthz(self) -> bool:
        try:
            await self._call("GET", "/healthz")
        except PersysError:
            return False
        return True


def _workload_path(uid: str, sub: str = "") -> str:
    path = f"/v1/workloads/{quote(uid, safe='')}"
    return f"{path}/{sub}" if sub else path


def _error(status: int, text: str, base_url: str) -> PersysError:
    """``NotFound`` and ``Unauthorized`` keep their meaning; any other refusal is the agent failing."""
    message = text[:300] or f"HTTP {status}"
    try:
        body = json.loads(text)
        if isinstance(body, dict) and body.get("message"):
            message = str(body["message"])
    except ValueError:
        pass
    if status == 404:
        return NotFound(message)
    if status == 401:
        return Unauthorized(message)
    return AgentError(f"agent {base_url}: {message}")
