"""Who is calling (the client certificate's CN and O) and what that role may do.

The mTLS handshake already proved the certificate was signed by the cluster CA; here the
identity is read from it and every request is checked against the caller's role.
Admins and controllers may do everything. Agents may read workloads and nodes, write their
own Node (and its status), write workload status and record Events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from persys.errors import Forbidden, Unauthorized
from persys.resources import Kind

ADMINS = "persys:admins"
CONTROLLERS = "persys:controllers"
AGENTS = "persys:agents"
FULL_ACCESS = frozenset({ADMINS, CONTROLLERS})
ANY_ROLE = frozenset({ADMINS, CONTROLLERS, AGENTS})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

READS = frozenset({"get", "list", "watch"})
WRITES = frozenset({"create", "update", "patch"})


@dataclass(frozen=True)
class Identity:
    """The authenticated caller: ``name`` is the certificate's CN, ``role`` its O."""

    name: str
    role: str


IDENTITY = web.RequestKey("persys_identity", Identity)


def allow(*roles: str) -> Callable[[Handler], Handler]:
    """Mark a handler as open to ``roles`` (routes without the mark are for admins and controllers)."""
    def mark(handler: Handler) -> Handler:
        handler.persys_roles = frozenset(roles)  # type: ignore[attr-defined]
        return handler
    return mark


def allowed_roles(handler: Any) -> frozenset[str]:
    return getattr(handler, "persys_roles", FULL_ACCESS)


def _subject_field(subject: Any, name: str) -> str:
    for rdn in subject or ():
        for key, value in rdn:
            if key == name:
                return str(value)
    return ""


def peer_identity(request: web.Request) -> Identity:
    """The caller's identity from its TLS client certificate."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        raise Unauthorized("a client certificate signed by the cluster CA is required")
    subject = cert.get("subject")
    return Identity(_subject_field(subject, "commonName"), _subject_field(subject, "organizationName"))


def identity(request: web.Request) -> Identity:
    """The identity the auth middleware stored for this request."""
    found = request.get(IDENTITY)
    if not isinstance(found, Identity):
        raise Unauthorized("request is not authenticated")
    return found


def authorize(who: Identity, verb: str, kind: Kind, name: str | None, subresource: str = "") -> None:
    """Raise Forbidden unless ``who`` may ``verb`` (get, list, watch, create, update, patch,
    delete) the object ``name`` of ``kind`` (or its ``subresource``)."""
    if who.role in FULL_ACCESS:
        return
    if who.role == AGENTS and _agent_may(who, verb, kind, name, subresource):
        return
    target = f"{kind.plural}/{name}" if name else kind.plural
    if subresource:
        target += f"/{subresource}"
    raise Forbidden(f"{who.name!r} (role {who.role or 'none'}) may not {verb} {target}")


def _agent_may(who: Identity, verb: str, kind: Kind, name: str | None, subresource: str) -> bool:
    if kind.kind in ("Workload", "Node") and verb in READS:
        return True
    if kind.kind == "Node" and name == who.name and verb in WRITES:
        return True
    if kind.kind == "Workload" and subresource == "status" and verb == "update":
        return True
    return kind.kind == "Event" and verb in WRITES
