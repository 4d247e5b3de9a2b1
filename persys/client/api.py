"""An asyncio client for the Persys API, generic over the kinds in the registry.

Errors come back as the ``PersysError`` the server described in its ``Status`` body (or, for an
answer that is not a ``Status``, the class its HTTP code stands for).

A client knows the built-in kinds; custom kinds it learns from the server's discovery route
(``GET /apis``, ``discover``), by itself the first time a call names a kind it does not know
(``resolve``), so ``client.get("Backup", "nightly")`` works once a definition serves Backups.
Each client has a registry of its own unless one is given, which discovery then adds to.
``headers`` go with every request; a header may repeat (the gateway's impersonation headers,
``persys.security.impersonation.headers``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict

from persys import jsoncodec
from persys.errors import NotFound, Unavailable, error_class, from_status
from persys.resources import Kind, Registry, Resource
from persys.resources.definitions import from_description
from persys.resources.kinds import default_registry
from persys.resources.registry import CORE_GROUP
from persys.security.tls import client_context

API_PREFIX = "/apis/persys.dev/v1"


@dataclass(frozen=True)
class WatchItem:
    """One line of a watch stream: ADDED, MODIFIED, DELETED, BOOKMARK (object may be None) or ERROR."""

    type: str
    object: Resource | None
    resource_version: str


PAGE = 500  # objects per page of a list


class ApiClient:
    """Talks to one API server URL (``fallbacks``: others to go on to when it accepts no connection);
    ``ca``/``cert``/``key`` select mTLS (https URLs)."""

    def __init__(self, server: str, *, ca: Path | None = None, cert: Path | None = None,
                 key: Path | None = None, timeout: float = 30.0, registry: Registry | None = None,
                 headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                 fallbacks: Sequence[str] = ()) -> None:
        self.server = server.rstrip("/")
        self.servers = list(dict.fromkeys([self.server, *(f.rstrip("/") for f in fallbacks)]))
        self.registry = registry if registry is not None else default_registry()
        self._discovered: set[str] = set()  # the kinds discovery registered
        self.timeout = timeout
        self._ssl = client_context(ca, cert, key) if self.server.startswith("https") else None
        self._headers: CIMultiDict[str] = CIMultiDict(headers or {})  # a header may repeat (Impersonate-Group)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False, limit=64)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def discover(self) -> list[dict[str, Any]]:
        """The kinds the server serves (``GET /apis``, schemas included); its custom kinds are registered
        in this client's registry, and custom kinds an earlier discovery found but the server no longer
        serves are forgotten. A kind whose names clash with one the registry has already is skipped."""
        _, data, _ = await self.request("GET", "/apis")
        entries: list[dict[str, Any]] = list(data.get("kinds") or []) if isinstance(data, dict) else []
        served: set[str] = set()
        for entry in entries:
            if entry.get("group") == CORE_GROUP:
                continue
            kind = from_description(entry)
            if not self.registry.clashes(kind):
                self.registry.register(kind)
                served.add(kind.kind)
        for gone in self._discovered - served:
            self.registry.unregister(gone)
        self._discovered = served
        return entries

    async def resolve(self, name: str) -> Kind:
        """The kind ``name`` stands for (kind, plural, short name or ``kind.group``), asking discovery
        when this client does not know it yet; NotFound lists the kinds known then."""
        try:
            return self.registry.get(name)
        except NotFound:
            await self.discover()
            return self.registry.get(name)

    async def _path(self, kind_name: str, namespace: str | None = None, name: str | None = None,
                    subresource: str | None = None) -> str:
        await self.resolve(kind_name)
        return self.path(kind_name, namespace, name, subresource)

    def path(self, kind_name: str, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """The API path of a kind's collection, an object, or its subresource (of a kind the registry has)."""
        kind = self.registry.get(kind_name)
        parts = [f"/apis/{kind.group}/{kind.version}"]
        if kind.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(kind.plural)
        if name:
            parts.append(name)
        if subresource:
            parts.append(subresource)
        return "/".join(parts)

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None) -> tuple[int, Any, Mapping[str, str]]:
        """One call; (HTTP status, decoded JSON body, response headers). Raises the server's error.

        With ``fallbacks``, a server that accepts no connection (nothing was sent) is passed over
        for the next one, which later calls keep using.
        """
        for _ in range(len(self.servers) - 1):
            try:
                return await self._request(method, path, body, params, headers)
            except _Unreachable:
                self._next_server()
        try:
            return await self._request(method, path, body, params, headers)
        except _Unreachable as e:
            raise Unavailable(str(e)) from e

    def _next_server(self) -> None:
        at = self.servers.index(self.server) if self.server in self.servers else -1
        self.server = self.servers[(at + 1) % len(self.servers)]

    async def _request(self, method: str, path: str, body: Any, params: Mapping[str, str] | None,
                       headers: Mapping[str, str] | None) -> tuple[int, Any, Mapping[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        try:
            async with self._http().request(method, self.server + path, data=data, params=params,
                                            headers=hdrs,
                                            timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                text = await resp.text()
                payload = jsoncodec.loads(text) if text and resp.content_type == "application/json" else text
                if resp.status >= 400:
                    if isinstance(payload, dict) and payload.get("kind") == "Status":
                        raise from_status(payload, resp.status)
                    raise error_class(resp.status)(f"HTTP {resp.status} from {self.server}{path}: {text[:200]}")
                return resp.status, payload, resp.headers
        except aiohttp.ClientConnectorError as e:
            raise _Unreachable(f"cannot reach API server {self.server}: {e}") from e
        except (aiohttp.ClientConnectionError, TimeoutError) as e:
            raise Unavailable(f"cannot reach API server {self.server}: {e}") from e

    def _obj(self, data: dict[str, Any]) -> Resource:
        """``data`` is always freshly decoded here, so the Resource adopts it without a copy."""
        return self.registry.get(str(data.get("kind"))).from_wire(data, copy=False)

    def _body(self, obj: Resource) -> dict[str, Any]:
        return self.registry.get(obj.kind).to_wire(obj)

    async def get(self, kind: str, name: str, namespace: str = "default") -> Resource:
        _, data, _ = await self.request("GET", await self._path(kind, namespace, name))
        return self._obj(data)

    async def list(self, kind: str, namespace: str | None = "default", selector: str = "", *,
                   page: int = PAGE) -> tuple[list[Resource], str]:
        """Objects of ``kind`` in ``namespace`` (None: all namespaces) and the list's resourceVersion.

        Read in pages of ``page`` objects, all from the snapshot the first one read.
        """
        path = await self._path(kind, namespace)
        params = {"limit": str(page), **({"labelSelector": selector} if selector else {})}
        items: list[Resource] = []
        while True:
            _, data, _ = await self.request("GET", path, params=params)
            items += [self._obj(item) for item in data.get("items", [])]
            following = data["metadata"].get("continue")
            if not following:
                return items, str(data["metadata"]["resourceVersion"])
            params = {**params, "continue": following}

    async def create(self, obj: Resource, *, dry_run: bool = False) -> Resource:
        _, data, _ = await self.request("POST", await self._path(obj.kind, obj.metadata.namespace or "default"),
                                        body=self._body(obj), params=_dry(dry_run))
        return self._obj(data)

    async def apply(self, obj: Resource, *, dry_run: bool = False) -> tuple[Resource, str]:
        """Create or update (PUT); the result is ``created``, ``configured`` or ``unchanged``."""
        _, data, headers = await self.request(
            "PUT", await self._path(obj.kind, obj.metadata.namespace or "default", obj.metadata.name),
            body=self._body(obj), params=_dry(dry_run))
        return self._obj(data), headers.get("X-Persys-Apply", "configured")

    async def apply_raw(self, document: dict[str, Any], *, dry_run: bool = False) -> tuple[Resource, str]:
        """Like ``apply`` for a manifest document as written, so the server validates it."""
        kind = await self.resolve(str(document.get("kind") or ""))
        meta = document.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        _, data, headers = await self.request("PUT", self.path(kind.kind, namespace, str(meta.get("name") or "")),
                                              body=document, params=_dry(dry_run))
        return self._obj(data), headers.get("X-Persys-Apply", "configured")

    async def update_status(self, kind: str, name: str, status: dict[str, Any], *, namespace: str = "default",
                            resource_version: str = "") -> Resource:
        known = await self.resolve(kind)
        body = {"kind": known.kind, "apiVersion": known.api_version,
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
                "status": status}
        _, data, _ = await self.request("PUT", await self._path(kind, namespace, name, "status"), body=body)
        return self._obj(data)

    async def patch(self, kind: str, name: str, patch: dict[str, Any], *, namespace: str = "default") -> Resource:
        _, data, _ = await self.request("PATCH", await self._path(kind, namespace, name), body=patch,
                                        headers={"Content-Type": "application/merge-patch+json"})
        return self._obj(data)

    async def delete(self, kind: str, name: str, *, namespace: str = "default") -> Resource | None:
        _, data, _ = await self.request("DELETE", await self._path(kind, namespace, name))
        return self._obj(data) if isinstance(data, dict) and data.get("kind") != "Status" else None

    async def review_access(self, verb: str, kind: str, namespace: str = "", *, user: str = "",
                            groups: Iterable[str] = ()) -> dict[str, Any]:
        """Whether this client (or, asked by an admin, ``user`` in ``groups``) may ``verb`` ``kind`` in
        ``namespace`` ('' for all namespaces): the server's AccessReview, ``status.allowed``,
        ``status.decidedBy`` and ``status.reason`` (``persys auth can-i``)."""
        spec: dict[str, Any] = {"verb": verb, "kind": kind, "namespace": namespace}
        if user:
            spec.update(user=user, groups=list(groups))
        _, data, _ = await self.request("POST", f"{API_PREFIX}/accessreviews", body={"spec": spec})
        return dict(data)

    async def stream(self, method: str, path: str, *,
                     params: Mapping[str, str] | None = None) -> AsyncIterator[bytes]:
        """A streamed response body, chunk by chunk, until the server ends it (logs -f)."""
        try:
            async with self._http().request(method, self.server + path, params=params,
                                            timeout=aiohttp.ClientTimeout(total=None,
                                                                          sock_connect=self.timeout)) as resp:
                if resp.status >= 400:
                    body = await resp.json(content_type=None)
                    raise from_status(body, resp.status)
                async for chunk in resp.content.iter_any():
                    yield chunk
        except aiohttp.ClientConnectionError as e:
            if isinstance(e, aiohttp.ClientConnectorError):
                self._next_server()  # the caller retries: on the next server
            raise Unavailable(f"stream from {self.server} broke: {e}") from e

    async def watch(self, kind: str, namespace: str | None = "default", *, resource_version: str = "",
                    selector: str = "") -> AsyncIterator[WatchItem]:
        """Stream changes after ``resource_version``; ends when the server closes the stream."""
        path = await self._path(kind, namespace)
        params = {"watch": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if selector:
            params["labelSelector"] = selector
        try:
            async with self._http().get(self.server + path, params=params,
                                        timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)) as resp:
                if resp.status >= 400:
                    body = await resp.json(content_type=None)
                    raise from_status(body, resp.status)
                async for line in resp.content:
                    if not line.strip():
                        continue
                    item = jsoncodec.loads(line)
                    obj = item.get("object") or {}
                    resource = self._obj(obj) if item["type"] not in ("BOOKMARK", "ERROR") else None
                    if item["type"] == "ERROR":
                        raise from_status(obj, int(obj.get("code", 500)))
                    rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
                    yield WatchItem(item["type"], resource, rv)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            if isinstance(e, aiohttp.ClientConnectorError):
                self._next_server()  # the informer resumes: on the next server
            raise Unavailable(f"watch on {self.server} broke: {e}") from e


def _dry(dry_run: bool) -> dict[str, str] | None:
    return {"dryRun": "All"} if dry_run else None


class _Unreachable(Exception):
    """A server accepted no connection: nothing was sent, so the call may go to another server."""
