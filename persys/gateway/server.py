"""``persys gateway``: one HTTPS listener for people and tools, in front of the API servers.

Its own routes are ``/healthz``, ``/metrics``, the login routes (``persys.gateway.login``), the
GitHub webhook (``persys.gateway.webhooks``) and the web dashboard under ``/ui/``
(``persys.gateway.dashboard``); every other path is proxied (``persys.gateway.upstream``)
for the caller its access token names. The listener's certificate is the user's (``--cert/--key``)
or one the cluster CA signs for the gateway's names; its client certificate towards the API has
the role ``gateway``. Sessions are cached from the API by an informer, a supervised service.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from persys.client.api import ApiClient
from persys.gateway.config import GatewayConfig
from persys.gateway.dashboard import Dashboard, UserClients
from persys.gateway.github import GitHub
from persys.gateway.login import Login
from persys.gateway.sessions import Sessions
from persys.gateway.tokens import Tokens, ensure_signing_key
from persys.gateway.upstream import Upstreams
from persys.gateway.webhooks import GitHubWebhooks
from persys.httpedge import GuardedSite, app_runner, error_middleware
from persys.observability import metrics
from persys.observability.logging import get_logger
from persys.renewal import CertificateRenewer
from persys.runtime.supervisor import Component, Named, Service, health_response
from persys.security import pki
from persys.security.paths import HomePaths
from persys.security.tls import server_context

log = get_logger("gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROLE = "gateway"
SANS = ("localhost", "127.0.0.1", "persys-gateway")
MAX_BODY = 25 * 1024 * 1024 + 1  # the webhook's limit (25 MB) is the largest; each route checks its own

REQUESTS = Counter("persys_gateway_requests_total", "Gateway requests by kind of route, method and code",
                   ["route", "method", "code"])
DURATION = Histogram("persys_gateway_request_duration_seconds", "Gateway request latency until the response "
                     "starts streaming, by kind of route", ["route", "method"])


def token_key_path(home: Path) -> Path:
    return HomePaths(home).pki / "gateway-token.key"


def listener_tls(config: GatewayConfig) -> tuple[Path, Path]:
    """The listener's certificate and key: the configured ones, else one the cluster CA signs (made once)."""
    if config.cert and config.key:
        return config.cert, config.key
    host = config.listen[0]
    return pki.issue(config.home, "gateway-server", ROLE, sans=list(dict.fromkeys([*SANS, host])),
                     lifetime=config.certificate_seconds)


def route_kind(request: web.Request) -> str:
    """A low-cardinality label: the gateway's own route, or ``proxy``."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else "unmatched"
    return "proxy" if canonical.startswith("/{") else canonical


class Gateway(Component):
    """The gateway's listener, its upstream API servers and its session cache."""

    def __init__(self, config: GatewayConfig) -> None:
        super().__init__("gateway")
        self.config = config
        paths = HomePaths(config.home)
        cert, key = paths.cert(config.identity), paths.key(config.identity)
        if not cert.exists() or not key.exists():
            raise FileNotFoundError(f"no certificate for {config.identity!r} in {paths.pki}: run `persys pki issue "
                                    f"--identity {config.identity} --role gateway`")
        self.upstreams = Upstreams(config.servers, ca=paths.ca_cert, cert=cert, key=key, dns=config.dns,
                                   zone=config.zone)
        self.api = ApiClient(config.servers[0], ca=paths.ca_cert, cert=cert, key=key, fallbacks=config.servers[1:])
        signing_key = ensure_signing_key(token_key_path(config.home))
        self.tokens = Tokens(signing_key, access_ttl=config.access_ttl)
        self.github = GitHub(config.github)
        self.sessions = Sessions(self.api, self.tokens, self.github, refresh_ttl=config.refresh_ttl)
        self.login = Login(self.github, self.sessions, flow_key=signing_key, public_url=config.url)
        self.webhooks = GitHubWebhooks(self.api)
        self.dashboard = Dashboard(self.login, UserClients(config.servers, ca=paths.ca_cert, cert=cert, key=key))
        self.app = self._build_app()
        self._runner: web.AppRunner | None = None
        self.port = config.listen[1]

    @property
    def url(self) -> str:
        return f"https://{self.config.listen[0]}:{self.port}"

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._observe, error_middleware(log, lambda r: "no such route")],
                              client_max_size=MAX_BODY)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self.login.add_routes(app)
        self.webhooks.add_routes(app)
        self.dashboard.add_routes(app)
        app.router.add_route("*", "/{path:.*}", self._proxy)
        return app

    def background(self) -> list[Service]:
        paths = HomePaths(self.config.home)
        # its client certificate, and the listener's when the cluster CA signed it (not one the user brought)
        renewed = [self.config.identity, *([] if self.config.cert else ["gateway-server"])]
        server = self.config.servers[0]
        return [Named("gateway/sessions", self.sessions.informer.run),
                Named("gateway/session-expiry", self.sessions.expire),
                *(Named(f"gateway/certificate-{identity}", CertificateRenewer(
                    identity, paths.cert(identity), paths.key(identity), paths.ca_cert, lambda: server).run)
                  for identity in renewed)]

    async def open(self) -> None:
        cert, key = listener_tls(self.config)
        tls = server_context(cert, key, HomePaths(self.config.home).ca_cert)
        tls.verify_mode = ssl.CERT_NONE  # people and tools bring tokens, not certificates
        runner = app_runner(self.app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        await GuardedSite(runner, *self.config.listen, ssl_context=tls).start()
        self.port = int(runner.addresses[0][1])
        if not self.config.public_url:  # the port may have been asked for as 0
            self.login.redirect_uri = f"{self.url}/auth/callback"
        log.info("gateway listening", url=self.url, servers=list(self.config.servers),
                 github=self.config.github.url if self.config.github.enabled else "not configured")

    async def cleanup(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self.upstreams.close()
        await self.api.close()
        await self.github.close()
        await self.dashboard.close()

    # -- routes --

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        claims = await self.login.caller(request, cookies=request.method in ("GET", "HEAD"))
        with structlog.contextvars.bound_contextvars(user=claims.user):
            return await self.upstreams.forward(request, claims.user, claims.groups)

    async def _healthz(self, request: web.Request) -> web.Response:
        return health_response(self.health(), sessions_synced=self.sessions.informer.synced.is_set())

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route, started, code = route_kind(request), time.perf_counter(), 500
        try:
            response = await handler(request)
            code = response.status
            return response
        finally:
            REQUESTS.labels(route, request.method, str(code)).inc()
            DURATION.labels(route, request.method).observe(time.perf_counter() - started)
