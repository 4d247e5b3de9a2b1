"""Who is calling (the client certificate's CN and O) and what that role may do.

The mTLS handshake already proved the certificate was signed by the cluster CA; here the
identity is read from it and every request is checked against the caller's role.
Admins and controllers may do everything. Agents may read workloads and nodes, write their
own Node (and its status), write the status of the workloads bound to them and record Events
about themselves and those workloads. A node is confined to what is its own because the control
plane acts on what it writes: the logs route calls the node a workload's status names, so a node
that could point another node's workload at itself would be sent that workload's requests.
Operators (``persys operator run``, outside the control plane) may read every kind but the
sensitive ones (Secrets) and write (and delete) the kinds they exist to manage: custom kinds,
Workloads, Events and the Leases they elect their leader on; never Nodes, Secrets or the
definitions of kinds. The gateway (``persys:gateway``) acts for the users it impersonates, whose
requests the RoleBindings decide (``persys.api.permission``); as itself it may only keep its
sessions and webhook records (Secrets and WebhookDeliveries in ``persys-gateway``) and read and
patch Workloads (a push sets the revision they deploy).
``authorize`` checks what the URL names; ``check_status_write`` and ``check_event_write`` check
what a node's body says against the stored objects it concerns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from persys.errors import Forbidden, NotFound, Unauthorized
from persys.resources import Kind, Resource
from persys.security.pki import AGENTS, GATEWAY, GATEWAY_NAMESPACE, OPERATORS, cert_identity
from persys.store import ObjectStore

ADMINS = "persys:admins"
CONTROLLERS = "persys:controllers"
FULL_ACCESS = frozenset({ADMINS, CONTROLLERS})
ANY_ROLE = frozenset({ADMINS, CONTROLLERS, AGENTS, OPERATORS, GATEWAY})
"""The roles the object and discovery routes admit; each request is then authorized on its own."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

READS = frozenset({"get", "list", "watch"})
WRITES = frozenset({"create", "update", "patch"})

OPERATOR_KINDS = frozenset({"Workload", "Event", "Lease"})
"""The built-in kinds an operator may write; every custom kind (not in persys.dev) too."""


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


def peer_identity(request: web.Request) -> Identity:
    """The caller's identity from its TLS client certificate."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        raise Unauthorized("a client certificate signed by the cluster CA is required")
    return Identity(*cert_identity(cert))


def identity(request: web.Request) -> Identity:
    """The identity the auth middleware stored for this request."""
    found = request.get(IDENTITY)
    if not isinstance(found, Identity):
        raise Unauthorized("request is not authenticated")
    return found


def authorize(who: Identity, verb: str, kind: Kind, name: str | None, subresource: str = "", *,
              namespace: str = "") -> None:
    """Raise Forbidden unless ``who`` may ``verb`` (get, list, watch, create, update, patch,
    delete) the object ``name`` of ``kind`` (or its ``subresource``) in ``namespace``."""
    if who.role in FULL_ACCESS:
        return
    if who.role == GATEWAY and _gateway_may(verb, kind, namespace, subresource):
        return
    if who.role == AGENTS and _agent_may(who, verb, kind, name, subresource):
        return
    if who.role == OPERATORS and _operator_may(verb, kind):
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


def _gateway_may(verb: str, kind: Kind, namespace: str, subresource: str) -> bool:
    if kind.kind in ("Secret", "WebhookDelivery") and namespace == GATEWAY_NAMESPACE:
        return True
    return kind.kind == "Workload" and not subresource and verb in ("get", "list", "patch")


def _operator_may(verb: str, kind: Kind) -> bool:
    if kind.sensitive:
        return False
    return verb in READS or kind.kind in OPERATOR_KINDS or not kind.builtin


def is_node(who: Identity) -> bool:
    """Whether ``who`` is a node agent, whose writes are confined to its own node and workloads."""
    return who.role == AGENTS


def check_status_write(who: Identity, current: Resource, status: dict[str, Any]) -> None:
    """Raise Forbidden unless ``who`` may replace ``current``'s status with ``status``: a node writes
    only the status of workloads bound to it (``spec.nodeName``) and names no other node in it."""
    if not is_node(who) or current.kind != "Workload":
        return
    where = f"workload {current.metadata.namespace}/{current.metadata.name}"
    bound = str(current.spec.get("nodeName") or "")
    if bound != who.name:
        raise Forbidden(f"node {who.name!r} may not write the status of {where}: it is bound to "
                        f"{repr(bound) if bound else 'no node'}, not to {who.name!r}")
    claimed = status.get("nodeName")
    if claimed not in (None, "", who.name):
        raise Forbidden(f"node {who.name!r} may not set status.nodeName of {where} to {claimed!r}: "
                        "a node may only name itself")


async def check_event_write(who: Identity, store: ObjectStore, event: Resource, *, replaces: bool = False) -> None:
    """Raise Forbidden unless ``who`` may write ``event``: a node records Events only about its own Node
    and the workloads bound to it. With ``replaces``, the same holds for the stored Event it overwrites."""
    if not is_node(who) or event.kind != "Event":
        return
    events = [event]
    if replaces:
        try:
            events.append(await store.get(event.kind, event.metadata.namespace, event.metadata.name))
        except NotFound:
            pass
    for about in events:
        involved = about.spec.get("involvedObject") or {}
        if await _node_of(store, involved, about.metadata.namespace) != who.name:
            raise Forbidden(f"node {who.name!r} may not record events about {involved.get('kind')} "
                            f"{involved.get('name')!r}: only about its own Node and the workloads bound to it")


async def _node_of(store: ObjectStore, involved: dict[str, Any], namespace: str) -> str:
    """The node an Event's involved object belongs to: a Node itself, a Workload's binding; '' for others."""
    kind, name = str(involved.get("kind") or "").lower(), str(involved.get("name") or "")
    if kind == "node":
        return name
    if kind != "workload":
        return ""
    try:
        workload = await store.get("Workload", str(involved.get("namespace") or namespace), name)
    except NotFound:
        return ""
    if involved.get("uid") not in (None, "", workload.metadata.uid):
        return ""  # names a workload by the name of a bound one, but the uid of another
    return str(workload.spec.get("nodeName") or "")
