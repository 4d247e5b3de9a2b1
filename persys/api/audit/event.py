"""One audit event: what a request was (verb, object, user) and the ``audit.k8s.io/v1`` Event recording it.

``request_info`` reads the verb and the object from the URL alone, the way Kubernetes' request-info
resolver does: ``/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]``, and
the reconciliation routes ``/workloads/{id}/{action}`` as subresources of a workload. Every other
path is a non-resource request whose verb is the lower-cased HTTP method.

``requester`` is the one place that says who a request is from: the identity the auth middleware
attached (the client certificate's CN and O). Impersonation (a gateway acting for a user) plugs in
there and nowhere else; until the API trusts impersonation headers, ``impersonatedUser`` is null.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from persys.api.audit.policy import Attributes, Level
from persys.api.auth import IDENTITY, Identity
from persys.api.impersonation import effective_user
from persys.errors import PersysError
from persys.resources import Registry
from persys.resources.registry import CORE_GROUP, CORE_VERSION

ANONYMOUS = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def timestamp(moment: datetime) -> str:
    """RFC 3339 with microseconds, UTC (Kubernetes' MicroTime)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def requester(request: web.Request) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the authenticated user, the user it acts for or None): the one source of an event's users.

    As in Kubernetes, ``user`` is who authenticated (the gateway's certificate for a person) and
    ``impersonatedUser`` whom it acted for (``effective_user``).
    """
    who = request.get(IDENTITY)
    if not isinstance(who, Identity):
        return dict(ANONYMOUS), None
    acting = effective_user(request)
    impersonated = {"username": acting.name, "groups": list(acting.groups)} if acting.impersonated else None
    return {"username": who.name, "groups": [who.role, "system:authenticated"]}, impersonated


def source_ips(request: web.Request) -> list[str]:
    """The caller's address; for a request the gateway makes for someone, first the addresses its
    ``X-Forwarded-For`` names (trusted from the gateway only, as impersonation is)."""
    remote = [request.remote] if request.remote else []
    if not effective_user(request).impersonated:
        return remote
    forwarded = [ip.strip() for ip in request.headers.get("X-Forwarded-For", "").split(",") if ip.strip()]
    return list(dict.fromkeys([*forwarded, *remote]))


@dataclass(frozen=True)
class ObjectRef:
    """What a resource request is about (``objectRef`` of the event)."""

    resource: str
    namespace: str = ""
    name: str = ""
    group: str = ""
    version: str = ""
    subresource: str = ""
    kind: str = ""  # "" when the registry does not know the plural
    sensitive: bool = False

    def to_dict(self) -> dict[str, str]:
        return {"resource": self.resource, "namespace": self.namespace, "name": self.name, "apiGroup": self.group,
                "apiVersion": self.version, "subresource": self.subresource}


@dataclass(frozen=True)
class RequestInfo:
    """The verb and, for a resource request, the object: read from the method and the URL."""

    verb: str
    object: ObjectRef | None = None


def request_info(request: web.Request, registry: Registry) -> RequestInfo:
    parts = [part for part in request.path.split("/") if part]
    ref = _api_object(parts, registry) or _workload_action(parts, request)
    method = request.method.upper()
    if ref is None:
        return RequestInfo(method.lower())
    if method in ("GET", "HEAD"):
        if ref.name:
            return RequestInfo("get", ref)
        return RequestInfo("watch" if request.query.get("watch") in ("true", "1") else "list", ref)
    verb = _VERBS.get(method, method.lower())
    return RequestInfo("deletecollection" if verb == "delete" and not ref.name else verb, ref)


def _api_object(parts: list[str], registry: Registry) -> ObjectRef | None:
    if len(parts) < 4 or parts[0] != "apis":
        return None
    group, version, rest, namespace = parts[1], parts[2], parts[3:], ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    plural, name, sub = rest[0], rest[1] if len(rest) > 1 else "", "/".join(rest[2:])
    return _ref(registry, group, version, plural, namespace, name, sub)


def _workload_action(parts: list[str], request: web.Request) -> ObjectRef | None:
    if len(parts) != 3 or parts[0] != "workloads":
        return None
    return ObjectRef("workloads", request.query.get("namespace", "default"), parts[1], CORE_GROUP, CORE_VERSION,
                     parts[2], "Workload")


def _ref(registry: Registry, group: str, version: str, plural: str, namespace: str, name: str,
         sub: str) -> ObjectRef:
    try:
        kind = registry.served(group, version, plural)
    except PersysError:
        return ObjectRef(plural, namespace, name, group, version, sub)
    return ObjectRef(plural, namespace, name, group, version, sub, kind.kind, kind.sensitive)


def attributes(request: web.Request, info: RequestInfo) -> Attributes:
    """What the policy matches this request against."""
    user, acting_for = requester(request)
    subject = acting_for or user
    ref = info.object
    if ref is None:
        return Attributes(subject["username"], tuple(subject["groups"]), info.verb, request.path)
    return Attributes(subject["username"], tuple(subject["groups"]), info.verb, request.path, ref.kind, ref.group,
                      ref.resource, ref.subresource, ref.namespace, ref.name, ref.sensitive)


@dataclass
class Pending:
    """A request being audited: its id and arrival time, its info and level once known."""

    audit_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
    info: RequestInfo | None = None
    level: Level = Level.NONE
    started: bool = False  # a ResponseStarted event was recorded (a watch)


def event(request: web.Request, pending: Pending, stage: str, code: int, *, message: str = "",
          request_object: Any = None, response_object: Any = None) -> dict[str, Any]:
    """The ``audit.k8s.io/v1`` Event of ``pending`` at ``stage``; bodies only at the levels that carry them."""
    assert pending.info is not None
    user, acting_for = requester(request)
    status: dict[str, Any] = {"metadata": {}, "code": code}
    if code >= 400:
        status.update(status="Failure", message=message)
    data: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": str(pending.level), "auditID": pending.audit_id,
        "stage": stage, "requestURI": request.raw_path, "verb": pending.info.verb, "user": user,
        "impersonatedUser": acting_for, "sourceIPs": source_ips(request),
        "userAgent": request.headers.get("User-Agent", ""),
        "objectRef": pending.info.object.to_dict() if pending.info.object else None,
        "responseStatus": status,
    }
    if pending.level.rank >= Level.REQUEST.rank and request_object is not None:
        data["requestObject"] = request_object
    if pending.level == Level.REQUEST_RESPONSE and response_object is not None:
        data["responseObject"] = response_object
    data["requestReceivedTimestamp"] = timestamp(pending.received)
    data["stageTimestamp"] = timestamp(datetime.now(UTC))
    return data
