"""The aiohttp application: the route table, the health routes, and ``build_app``.

One application serves both listeners; the ``guard`` middleware keeps the plain one to
``PLAIN_PATHS``. ``/healthz`` reports what the server's process owns: its supervised tasks and,
under ``persys up``, its etcd child (503 naming what is down and why). ``/readyz`` reports
whether etcd answers (503 ``etcd: not reachable (…)``). An external etcd that is down makes the
server unready, not dead: restarting the server would not bring etcd back. Other components
add their routes by passing callables to ``build_app`` (``extra_routes``); ``/openapi.json`` is
generated from the router itself, so it lists them too. The object routes exist twice: under
``/apis/persys.dev/v1`` for the built-in kinds, and under ``/apis/{group}/{version}`` for the
kinds of any other group (custom kinds, served while their ResourceDefinition is stored).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

import persys
from persys.api import bootstrap, discovery, hmackeys, middleware, openapi, resources, review
from persys.api.audit import auditor
from persys.api.auth import Handler, allow
from persys.api.context import API_CONTEXT, ApiContext, api_context
from persys.errors import StoreUnavailable
from persys.observability import metrics
from persys.resources import API_VERSION
from persys.runtime.supervisor import Health, health_response

PREFIX = "/apis/persys.dev/v1"
GROUP_PREFIX = "/apis/{group}/{version}"
MAX_BODY = 1024 * 1024

RouteAdder = Callable[[web.Application], None]
HEALTH: web.AppKey[Callable[[], Health]] = web.AppKey("persys_api_health")
# "" while the process's own etcd child is up (or etcd is not its child), else what it is doing
ETCD_STATE: web.AppKey[Callable[[], str]] = web.AppKey("persys_api_etcd_state")
PING_TIMEOUT = 2.0


def no_etcd_child() -> str:
    """The ``ETCD_STATE`` of a server whose etcd is not its child (``persys server``)."""
    return ""


def health_answer(health: Health, down: Sequence[str] = (), **details: Any) -> web.Response:
    """200 when nothing is ``down`` and ``health`` is healthy; else 503, its reason naming each problem."""
    if not down:
        return health_response(health, **details)
    problems = [*down, *([] if health.healthy else [health.reason])]
    return web.json_response({**details, **health.to_dict(), "status": "failing", "reason": "; ".join(problems)},
                             status=503)


@allow(middleware.PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    """Liveness: none of the process's supervised tasks is dead, nor its etcd child (503 naming them)."""
    child = request.app[ETCD_STATE]()
    return health_answer(request.app[HEALTH](), [f"etcd: not reachable ({child})"] if child else [])


@allow(middleware.PUBLIC)
async def readyz(request: web.Request) -> web.Response:
    """Readiness: etcd answers within ``PING_TIMEOUT`` (503 naming why not)."""
    try:
        async with asyncio.timeout(PING_TIMEOUT):
            await api_context(request).etcd.revision()
    except (StoreUnavailable, TimeoutError) as e:
        error = e.message if isinstance(e, StoreUnavailable) else f"etcd unavailable: no answer in {PING_TIMEOUT:g}s"
        reason = f"etcd: not reachable ({request.app[ETCD_STATE]() or error})"
        return health_answer(Health(), [reason], message=error)
    return health_answer(Health())


@allow(middleware.PUBLIC)
async def version(request: web.Request) -> web.Response:
    """The server's version and API group version."""
    return web.json_response({"version": persys.__version__, "apiVersion": API_VERSION})


@allow(middleware.PUBLIC)
async def metrics_page(request: web.Request) -> web.Response:
    """Prometheus metrics of this process."""
    body, content_type = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


@allow(middleware.PUBLIC)
async def openapi_page(request: web.Request) -> web.Response:
    """The OpenAPI 3 description of every route of this server."""
    return web.json_response(openapi.document(request.app, api_context(request).registry))


def object_routes(prefix: str) -> list[tuple[str, str, Handler]]:
    """(method, path, handler) of the generic object routes under ``prefix``: the namespaced ones before
    the cluster-scoped ones, so that `namespaces/…` never reads as a kind called "namespaces"."""
    namespaced, cluster = prefix + "/namespaces/{namespace}/{plural}", prefix + "/{plural}"
    return [(method, collection + path, handler) for collection in (namespaced, cluster) for method, path, handler in (
        ("GET", "", resources.get_or_list),
        ("POST", "", resources.create),
        ("PUT", "", resources.apply),
        ("GET", "/{name}", resources.get_or_list),
        ("PUT", "/{name}", resources.apply),
        ("PATCH", "/{name}", resources.patch),
        ("DELETE", "/{name}", resources.delete),
        ("GET", "/{name}/status", resources.get_status),
        ("PUT", "/{name}/status", resources.put_status),
    )]


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/healthz", healthz),
    ("GET", "/readyz", readyz),
    ("GET", "/version", version),
    ("GET", "/metrics", metrics_page),
    ("GET", "/openapi.json", openapi_page),
    ("GET", "/apis", discovery.all_kinds),
    ("GET", GROUP_PREFIX, discovery.group_kinds),
    ("POST", review.PATH, review.review),  # before the object routes, whose {plural} would take it
    *bootstrap.ROUTES,  # joining nodes: /cluster-info and the token-authenticated CSR routes
    *hmackeys.ROUTES,  # admins: the agents' HMAC keyring and its rotation
    *object_routes(PREFIX),
]
# the same routes for the kinds of every other group (custom kinds), after the built-in ones
GROUP_ROUTES = object_routes(GROUP_PREFIX)


async def _stop_watches(app: web.Application) -> None:
    """``on_shutdown``: end open watch streams so that shutdown does not wait for them, and the caches."""
    for task in list(app[API_CONTEXT].watches):
        task.cancel()
    await app[API_CONTEXT].watch_caches.close()


def build_app(ctx: ApiContext, extra_routes: Sequence[RouteAdder] = (),
              health: Callable[[], Health] = Health, etcd_state: Callable[[], str] = no_etcd_child) -> web.Application:
    """The API application over ``ctx``; each of ``extra_routes`` adds routes to it.

    ``health`` is what ``/healthz`` reports (the ApiServer passes its process's supervisor), with
    ``etcd_state`` when etcd is the process's child (``persys up``).

    Extra routes are for admins and controllers unless their handler is marked with
    ``persys.api.auth.allow(...)``; they reach the shared context with ``api_context(request)``.
    """
    app = web.Application(client_max_size=MAX_BODY,
                          middlewares=[middleware.observe, auditor.audit, middleware.errors, middleware.guard])
    app[API_CONTEXT] = ctx
    app[HEALTH] = health
    app[ETCD_STATE] = etcd_state
    for method, path, handler in ROUTES + GROUP_ROUTES:
        app.router.add_route(method, path, handler)
    for add in extra_routes:
        add(app)
    app.on_response_prepare.append(middleware.add_headers)
    app.on_response_prepare.append(auditor.on_prepare)
    app.on_shutdown.append(_stop_watches)
    return app
