"""``POST /apis/persys.dev/v1/accessreviews``: may I (or, for admins, may this user) do this? The server's answer.

Like Kubernetes' SelfSubjectAccessReview, the question is ``{"verb", "kind", "namespace"}`` (no
namespace: all namespaces) and the answer is the question with a ``status``: ``allowed``,
``decidedBy`` (the binding, or the certificate role, that allowed it) and ``reason``. It is what
``persys auth can-i`` prints. Each caller asks about itself: the user the gateway impersonates (decided
by the bindings) or its certificate (decided by its role). Admins and controllers may also ask about
someone else, as the gateway would present them: ``"user"`` and ``"groups"`` in the question.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from persys.api.access import VERBS, User
from persys.api.auth import ANY_ROLE, FULL_ACCESS, allow, authorize, identity
from persys.api.context import api_context
from persys.api.impersonation import effective_user
from persys.api.permission import check
from persys.errors import BadRequest, Cause, Forbidden, Invalid, NotFound
from persys.httpedge import read_json
from persys.resources import API_VERSION, Kind, Registry
from persys.resources.names import check_dns1123

PATH = "/apis/persys.dev/v1/accessreviews"
KIND = "AccessReview"


def _question(data: Any, kinds: Registry) -> tuple[str, Kind, str, str, list[str]]:
    """(verb, kind, namespace, user, groups) of a question; Invalid naming each bad field."""
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    spec = data.get("spec", data)
    spec = spec if isinstance(spec, dict) else {}
    causes: list[Cause] = []
    verb, kind_name = spec.get("verb"), spec.get("kind")
    namespace, user, groups = spec.get("namespace") or "", spec.get("user") or "", spec.get("groups") or []
    if verb not in VERBS:
        causes.append(Cause("spec.verb", f"must be one of {', '.join(VERBS)}"))
    kind: Kind | None = None
    try:
        kind = kinds.get(kind_name) if isinstance(kind_name, str) and kind_name else None
        if kind is None:
            causes.append(Cause("spec.kind", "required: a kind, plural or short name"))
    except NotFound as e:
        causes.append(Cause("spec.kind", e.message))
    if not isinstance(namespace, str) or (namespace and check_dns1123(namespace)):
        causes.append(Cause("spec.namespace", "must be a DNS-1123 label"))
    if not isinstance(user, str):
        causes.append(Cause("spec.user", "must be a string"))
    if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
        causes.append(Cause("spec.groups", "must be a list of group names"))
    elif groups and not user:
        causes.append(Cause("spec.user", "required when groups are given"))
    if causes or kind is None:
        raise Invalid(f"{KIND} is invalid: " + "; ".join(f"{c.field}: {c.message}" for c in causes), causes=causes)
    return str(verb), kind, namespace if kind.namespaced else "", user, list(groups)


@allow(*ANY_ROLE)
async def review(request: web.Request) -> web.Response:
    """Answer whether the caller (or, for admins, ``spec.user``) may do ``spec.verb`` on ``spec.kind``."""
    ctx = api_context(request)
    verb, kind, namespace, user_name, groups = _question(await read_json(request), ctx.registry)
    caller, who = effective_user(request), identity(request)
    if user_name and (caller.impersonated or who.role not in FULL_ACCESS):
        raise Forbidden(f"{caller.describe()} may not ask about another user: only admins may")
    subject = User(user_name, tuple(groups), impersonated_by=who.name) if user_name else caller
    if subject.impersonated:
        decision = await check(ctx, subject, verb, kind, namespace)
        allowed, decided_by, reason = decision.allowed, decision.binding, decision.reason
    else:
        try:
            authorize(who, verb, kind, None, namespace=namespace)
            allowed, decided_by, reason = True, f"certificate role {who.role}", f"role {who.role} allows it"
        except Forbidden as e:
            allowed, decided_by, reason = False, "", e.message
    question = {"verb": verb, "kind": kind.kind, "namespace": namespace, "user": subject.name,
                "groups": list(subject.groups)}
    return web.json_response({"kind": KIND, "apiVersion": API_VERSION, "spec": question,
                              "status": {"allowed": allowed, "decidedBy": decided_by, "reason": reason}})
