"""Cross-cutting request handling: request ids, traces, metrics, errors as Status bodies, auth.

Order (outermost first): ``observe`` binds the request id, opens the server span and records
metrics around everything; ``errors`` (``persys.httpedge``'s, the agent's too) turns every
failure into a JSON ``Status`` with the code of the error's class; ``guard`` keeps the plain
listener to its few public paths, and on the mTLS listener reads who the request acts as
(``persys.api.impersonation``: the certificate, or the user the gateway impersonates) and checks the
certificate's role against the route. The mTLS listener asks for a client certificate without requiring
one, so that a joining node can reach the ``BOOTSTRAP`` routes; every other route answers 401 without one.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid

import structlog
from aiohttp import web
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import Counter, Histogram

from persys.api.auth import IDENTITY, Handler, allowed_roles, peer_identity
from persys.api.impersonation import USER, certificate_user, resolve
from persys.errors import Forbidden, NotFound
from persys.httpedge import error_middleware
from persys.observability import tracing
from persys.observability.logging import get_logger

SERVICE_NAME = "persys-api"
PUBLIC = "*"  # the role mark of handlers anyone may call (health, version, metrics, openapi)
BOOTSTRAP = "bootstrap"  # handlers a joining node calls without a certificate; they check its token themselves
PLAIN_PATHS = frozenset({"/healthz", "/readyz", "/version", "/metrics", "/openapi.json"})

REQUESTS = Counter("persys_api_requests_total", "API requests by route template, method and code",
                   ["route", "method", "code"])
DURATION = Histogram("persys_api_request_duration_seconds", "API request latency by route template and method",
                     ["route", "method"])

REQUEST_ID = web.RequestKey("persys_request_id", str)

log = get_logger("api")


@functools.cache
def _tracer() -> Tracer:
    return tracing.tracer("persys.api")


def route_template(request: web.Request) -> str:
    route = request.match_info.route
    if request.match_info.http_exception is not None or route.resource is None:
        return "unmatched"
    return route.resource.canonical


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:128] or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    route, started, code = route_template(request), time.perf_counter(), 500
    span_name = f"{request.method} {route}"
    with structlog.contextvars.bound_contextvars(request_id=request_id), \
            _tracer().start_as_current_span(
                span_name, context=tracing.extract(request.headers), kind=SpanKind.SERVER,
                attributes={"http.method": request.method, "http.route": route}) as span:
        try:
            response = await handler(request)
            code = response.status
            return response
        except asyncio.CancelledError:
            code = 499  # the client went away mid-request (nginx's "client closed request"), not a 500
            raise
        finally:
            elapsed = time.perf_counter() - started
            span.set_attribute("http.status_code", code)
            REQUESTS.labels(route, request.method, str(code)).inc()
            DURATION.labels(route, request.method).observe(elapsed)
            log.debug("request", method=request.method, route=route, code=code, secure=request.secure,
                      seconds=round(elapsed, 6))


errors = error_middleware(log, lambda request: "no such route; see /openapi.json")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.secure:
        if request.path not in PLAIN_PATHS:
            raise NotFound(f"{request.path} is served on the mTLS listener only")
        return await handler(request)
    roles = allowed_roles(request.match_info.handler)
    if BOOTSTRAP in roles:  # persys.api.bootstrap: authenticated by a bootstrap token, not a certificate
        return await handler(request)
    who = peer_identity(request)
    request[IDENTITY] = who
    if PUBLIC in roles:
        request[USER] = certificate_user(who)
        return await handler(request)
    user = request[USER] = resolve(request, who)
    if request.match_info.http_exception is None and who.role not in roles:
        acting = f" acting for {user.describe()}" if user.impersonated else ""
        raise Forbidden(f"{who.name!r} (role {who.role or 'none'}){acting} may not {request.method} {request.path}")
    return await handler(request)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer names the service and echoes the request id."""
    response.headers["X-Service-Name"] = SERVICE_NAME
    if REQUEST_ID in request:
        response.headers["X-Request-Id"] = request[REQUEST_ID]
