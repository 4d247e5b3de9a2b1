"""Who a request acts for: its certificate, or the user the gateway impersonates.

The gateway (client certificate of role ``persys:gateway``) authenticates people itself and calls
the API with its own certificate plus ``Impersonate-User`` (``github:octocat``) and any number of
``Impersonate-Group`` headers (``github-org:acme``, ``github-team:acme/ops``), as Kubernetes'
impersonation does. Those headers are trusted from the gateway role only: from any other caller
they are refused (403 naming the header), never ignored, so that nobody mistakes them for working.
A gateway request without impersonation headers acts as the gateway itself, which may do only
what it needs for its sessions and webhooks (``persys.api.auth``); one naming groups but no user is
refused.

``effective_user(request)`` is the one answer to "who is this request" that the rest of the API
(authorization, and the audit log) reads: the impersonated user, with the gateway's identity in
``impersonated_by``, or the certificate's identity with its role as its only group. The auth
middleware (``persys.api.middleware.guard``) resolves it once per request; impersonation headers
mean nothing on the public routes (health, version, metrics, openapi).
"""

from __future__ import annotations

from aiohttp import web

from persys.api.access import User
from persys.api.auth import IDENTITY, Identity
from persys.errors import BadRequest, Forbidden
from persys.security.impersonation import IMPERSONATE_GROUP, IMPERSONATE_USER
from persys.security.pki import GATEWAY

IMPERSONATE_PREFIX = "impersonate-"
MAX_VALUE = 256
MAX_GROUPS = 200

USER = web.RequestKey("persys_user", User)
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))  # as Kubernetes names such requests


def _value(header: str, value: str) -> str:
    """A header value, checked: not empty, not too long, no control characters (400 otherwise)."""
    if not value.strip() or len(value) > MAX_VALUE or any(not c.isprintable() for c in value):
        raise BadRequest(f"{header} must be 1-{MAX_VALUE} printable characters, not {value[:MAX_VALUE]!r}")
    return value.strip()


def _headers_of(request: web.Request) -> list[str]:
    """The impersonation headers the request carries, as it spelled them, each once."""
    return list(dict.fromkeys(h for h in request.headers if h.lower().startswith(IMPERSONATE_PREFIX)))


def resolve(request: web.Request, who: Identity) -> User:
    """The user ``who``'s request acts as; Forbidden (naming the header) for impersonation by anyone
    but the gateway, and for a gateway request that names nobody; BadRequest for malformed headers."""
    headers = _headers_of(request)
    if who.role != GATEWAY:
        if headers:
            raise Forbidden(f"{who.name!r} (role {who.role or 'none'}) may not impersonate: the {headers[0]} "
                            f"header is accepted from the {GATEWAY} role only")
        return certificate_user(who)
    unknown = [h for h in headers if h.lower() not in (IMPERSONATE_USER.lower(), IMPERSONATE_GROUP.lower())]
    if unknown:
        raise BadRequest(f"unsupported impersonation header {unknown[0]}; use {IMPERSONATE_USER} and "
                         f"{IMPERSONATE_GROUP}")
    users = request.headers.getall(IMPERSONATE_USER, [])
    if not headers:
        return certificate_user(who)  # the gateway as itself: its own few rights (persys.api.auth)
    if not users:
        raise Forbidden(f"gateway {who.name!r} acts only for a user: the {IMPERSONATE_USER} header is missing")
    if len(users) > 1:
        raise BadRequest(f"{IMPERSONATE_USER} may be given once, not {len(users)} times")
    groups = request.headers.getall(IMPERSONATE_GROUP, [])
    if len(groups) > MAX_GROUPS:
        raise BadRequest(f"at most {MAX_GROUPS} {IMPERSONATE_GROUP} headers, not {len(groups)}")
    return User(_value(IMPERSONATE_USER, users[0]),
                tuple(dict.fromkeys(_value(IMPERSONATE_GROUP, g) for g in groups)), impersonated_by=who.name)


def certificate_user(who: Identity) -> User:
    """The user a request is that acts as its own certificate: its CN, with its role as its one group."""
    return User(who.name, (who.role,) if who.role else ())


def effective_user(request: web.Request) -> User:
    """Who this request acts as (see the module docstring); the one place every reader asks. Never raises:
    a request refused before its impersonation was accepted is its certificate's, and one without a
    certificate (the plain listener) is ``ANONYMOUS``."""
    found = request.get(USER)
    if isinstance(found, User):
        return found
    who = request.get(IDENTITY)
    return certificate_user(who) if isinstance(who, Identity) else ANONYMOUS
