"""Running the API: one application on two listeners (plain and mTLS), started and stopped as a unit.

``ApiServer`` is the supervised component ``persys server`` and ``persys up`` run; its
``/healthz`` reports every supervised task of its process (in ``persys up``, the whole
cluster's, and its etcd child). Beside its listeners it follows the ResourceDefinitions
(``persys.api.definitions``): it serves the stored ones before it listens, and each new one
as soon as it is stored. It also caches the RoleBindings and ClusterRoleBindings that authorize
the users the gateway acts for (``persys.api.permission``). ``ROUTE_MODULES`` lists the route
modules other components contribute (one line each), loaded when they exist.
"""

from __future__ import annotations

import importlib
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from persys.api.app import RouteAdder, build_app, no_etcd_child
from persys.api.audit.auditor import Auditor, AuditSettings
from persys.api.bootstrap import ca_bundle_of
from persys.api.context import ApiContext
from persys.api.definitions import Definitions
from persys.api.permission import BindingCache
from persys.dns.registration import register_api_server
from persys.httpedge import LIMITS, GuardedSite, ListenerLimits, app_runner
from persys.observability.logging import get_logger
from persys.renewal import CertificateRenewer
from persys.runtime.supervisor import Component, Named, Service, Supervisor, run_process
from persys.security.keyring import read_keyring
from persys.security.paths import HomePaths, read_cluster_id
from persys.security.tls import server_context
from persys.store import Etcd, EtcdTLS
from persys.store.clusterid import claim_cluster_id

# Route modules of other components: "module:function", the function taking the web.Application.
ROUTE_MODULES: tuple[str, ...] = (
    "persys.api.reconciliation:add_routes",
    "persys.api.logs:add_routes",
    "persys.api.audit.query:add_routes",
)

log = get_logger("api")
PRIME_TIMEOUT = 2.0  # seconds to read the definitions before listening; the informer catches up after


def default_routes() -> list[RouteAdder]:
    """The route adders of ``ROUTE_MODULES`` whose module exists (components not built yet are skipped)."""
    adders: list[RouteAdder] = []
    for entry in dict.fromkeys(ROUTE_MODULES):  # a line added twice adds its routes once
        module_name, _, function = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        adders.append(getattr(module, function))
    return adders


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, host 127.0.0.1)."""
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def server_certificate(home: Path) -> tuple[Path, Path, Path]:
    """(certificate, key, CA) of ``persys pki init``'s server certificate."""
    paths = HomePaths(home)
    return paths.cert("server"), paths.key("server"), paths.ca_cert


def tls_from_home(home: Path) -> ssl.SSLContext:
    """The mTLS context of ``persys pki init``'s server certificate, trusting the cluster CA."""
    context = server_context(*server_certificate(home))
    context.verify_mode = ssl.CERT_OPTIONAL  # a joining node has no certificate yet (persys.api.bootstrap)
    return context


class ApiServer(Component):
    """The API on a plain listener and an mTLS listener (the port of either may be 0: any free one)."""

    def __init__(self, ctx: ApiContext, tls: ssl.SSLContext, *, listen: tuple[str, int] = ("127.0.0.1", 7070),
                 secure_listen: tuple[str, int] = ("127.0.0.1", 7443),
                 extra_routes: Sequence[RouteAdder] | None = None,
                 etcd_state: Callable[[], str] = no_etcd_child, limits: ListenerLimits = LIMITS,
                 certificate: tuple[Path, Path, Path] | None = None) -> None:
        """``certificate``: (cert, key, CA) of the listener's certificate, to renew it (``persys.renewal``)."""
        super().__init__("api")
        self.certificate = certificate
        ctx.ca_file = certificate[2] if certificate is not None else ctx.ca_file
        self.limits = limits
        self.ctx = ctx
        self.tls = tls
        ctx.ca_bundle = ctx.ca_bundle or ca_bundle_of(tls)
        self.listen = listen
        self.secure_listen = secure_listen
        routes = default_routes() if extra_routes is None else extra_routes
        self.app = build_app(ctx, routes, health=self.health, etcd_state=etcd_state)
        self.definitions = Definitions(ctx)
        self.bindings = BindingCache(ctx)
        self._runner: web.AppRunner | None = None
        self.plain_port = listen[1]
        self.secure_port = secure_listen[1]

    @property
    def plain_url(self) -> str:
        return f"http://{self.listen[0]}:{self.plain_port}"

    @property
    def secure_url(self) -> str:
        return f"https://{self.secure_listen[0]}:{self.secure_port}"

    def background(self) -> list[Service]:
        renewal = [Named("api/certificate", CertificateRenewer("server", *self.certificate, self._own_url).run)] \
            if self.certificate is not None else []
        return [*self.definitions.services(), *self.bindings.services(), self.ctx.hmac_keys,
                *(self.ctx.audit.services() if self.ctx.audit else []), *renewal]

    def _own_url(self) -> str:
        """Where this server reaches its own mTLS listener (a wildcard listen address is reached on loopback)."""
        host = self.secure_listen[0]
        return self.secure_url if host not in ("", "0.0.0.0", "::") else f"https://127.0.0.1:{self.secure_port}"

    async def open(self) -> None:
        await self.definitions.prime(PRIME_TIMEOUT)
        runner = app_runner(self.app, self.limits, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        plain = GuardedSite(runner, *self.listen, self.limits)
        secure = GuardedSite(runner, *self.secure_listen, self.limits, ssl_context=self.tls)
        await plain.start()
        await secure.start()
        # the ports actually bound (either may have been asked for as 0), in the order the sites started
        (_, self.plain_port, *_), (_, self.secure_port, *_) = runner.addresses
        log.info("api listening", plain=self.plain_url, secure=self.secure_url)

    async def cleanup(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def serve(etcd_urls: str, home: Path, listen: str, secure_listen: str, *,
                bookmark_interval: float = 5.0, zone: str = "", advertise: str = "",
                audit: AuditSettings | None = None, etcd_tls: EtcdTLS | None = None) -> None:
    """Run the API until SIGINT or SIGTERM (``persys server``), registered in DNS when ``zone`` is set.

    It first claims the cluster id (``claim_cluster_id``): a home of another cluster is refused.
    Its audit trail follows ``audit`` (default: the default policy, files under ``home/audit``).
    """
    etcd = Etcd(etcd_urls, tls=etcd_tls)
    secret = HomePaths(home).hmac_secret
    auditor = Auditor(audit) if audit is not None else Auditor.default(home / "audit")
    ctx = ApiContext(etcd, bookmark_interval=bookmark_interval,
                     hmac_secret=read_keyring(secret) if secret.exists() else None, audit=auditor)
    server = ApiServer(ctx, tls_from_home(home), listen=parse_address(listen),
                       secure_listen=parse_address(secure_listen), certificate=server_certificate(home))

    async def start(supervisor: Supervisor) -> None:
        cluster_id = await claim_cluster_id(etcd, read_cluster_id(HomePaths(home)))
        log.info("cluster", id=cluster_id or None)
        auditor.set_cluster(cluster_id)
        await server.start(supervisor)
        if zone:  # DNS discovery: SRV _persys-api._tcp.<zone> on an etcd lease, withdrawn on the way out
            await register_api_server(etcd, zone, advertise or server.secure_listen[0], server.secure_port,
                                      supervisor=supervisor)

    try:
        await run_process("api", start)
    finally:
        await etcd.close()
