"""One node agent: a runtime, its executor and event hub, the HTTP listener and Node heartbeats.

``Agent`` is the supervised component ``persys agent`` and ``persys up`` run (task
``agent-<node>``, its heartbeat ``agent-<node>/heartbeat``), and what the tests start in-process.
Its ``/healthz`` answers 503, naming the task and the error, while one of its node's tasks is
dead. Stopping an agent closes its listener and connections but never stops a workload: the
containers keep running and the next agent rebuilds its state from them.

With a Node registration the agent also follows the agents' HMAC keyring (``persys.agentd.hmackeys``):
it re-reads it from the API every ``keyring_refresh`` seconds, so that rotations need no restart.

Given TLS (``serve_tls``, ``AgentConfig.tls``) the agent serves HTTPS with its node certificate and
its Node advertises an ``https://`` address, so that the control plane can check that it calls this
node and no other (``persys.agentclient``); without, plain HTTP, as hollow nodes run.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from persys.agentd.events import EventHub
from persys.agentd.executor import Executor
from persys.agentd.hmackeys import REFRESH_SECONDS, KeyringFollower
from persys.agentd.node import NodeRegistration
from persys.agentd.prober import ProbeHost, Prober
from persys.agentd.runtime import Runtime
from persys.agentd.server import make_app
from persys.httpedge import GuardedSite, app_runner
from persys.observability.logging import get_logger
from persys.renewal import CertificateRenewer
from persys.runtime.supervisor import Component, Named, Service, health_response
from persys.security.hmac import Verifier
from persys.security.keyring import Keyring
from persys.security.tls import presenting

log = get_logger("agent")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class AgentConfig:
    """Everything one agent needs; ``runtime_factory`` builds its runtime from (node, hub)."""

    name: str
    host: str
    port: int
    secrets: Mapping[str, bytes] | Keyring  # the keys it accepts: a keyring, or secrets by key id
    runtime_factory: Callable[[str, EventHub], Runtime]
    labels: dict[str, str] = field(default_factory=dict)
    parallelism: int = 8
    max_skew: int = 300
    registration: NodeRegistration | None = None
    tls: ssl.SSLContext | None = None  # HTTPS with the node's certificate (``node_tls``); None: plain HTTP
    cluster_id: str = ""  # stamped on the containers it creates; it claims only its cluster's (runtime_factory's)
    certificate: tuple[Path, Path, Path] | None = None  # (cert, key, ca) it renews through CSRs; None: none
    keyring_file: Path | None = None  # where the keyring it follows is saved for its next start; None: nowhere
    keyring_refresh: float = REFRESH_SECONDS  # re-read the keyring from the API this often (with a registration)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Agent(Component):
    """One node agent inside the current event loop."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(f"agent-{config.name}")
        self.health_scope = self.name  # hollow nodes share a process: each reports its own tasks
        self.config = config
        self.hub = EventHub()
        self.runtime = config.runtime_factory(config.name, self.hub)
        self.executor = Executor(config.name, parallelism=config.parallelism)
        self.verifier = Verifier(config.secrets, max_skew=config.max_skew, node=config.name)
        # runtimes that run real containers probe them (hollow containers have nothing to probe)
        self.prober = Prober(config.name, self.runtime, self.hub, self.executor) \
            if isinstance(self.runtime, ProbeHost) else None
        self._runner: web.AppRunner | None = None
        if config.tls is not None:
            self.serve_tls(config.tls)

    @property
    def url(self) -> str:
        return f"{'https' if self.config.tls is not None else 'http'}://{self.config.address}"

    def serve_tls(self, context: ssl.SSLContext) -> None:
        """Serve HTTPS with ``context`` (call before ``start``) and register the Node's address as ``https://``."""
        self.config.tls = context
        registration = self.config.registration
        if registration is not None and not registration.address.startswith("https://"):
            registration.address = "https://" + registration.address.removeprefix("http://")

    def background(self) -> list[Service]:
        registration = self.config.registration
        services: list[Service] = [Named(f"{self.name}/heartbeat", registration.run)] if registration else []
        if registration is not None and self.config.certificate is not None:
            services.append(Named(f"{self.name}/certificate", self._renewer(registration).run))
        if registration is not None:
            follower = KeyringFollower(self.config.name, self.verifier, lambda: registration.api,
                                       self.config.keyring_file, interval=self.config.keyring_refresh)
            services.append(Named(f"{self.name}/hmac-keyring", follower.run))
        if self.prober is not None:
            services.append(Named(f"{self.name}/prober", self.prober.run))
        return services

    def _renewer(self, registration: NodeRegistration) -> CertificateRenewer:
        """Renews the node certificate at 2/3 of its lifetime (its listener and API client then present it)."""
        assert self.config.certificate is not None
        cert, key, ca = self.config.certificate
        return CertificateRenewer(f"node-{self.config.name}", cert, key, ca, lambda: registration.api.server)

    async def open(self) -> None:
        await self.runtime.open()
        app = make_app(self.config.name, self.runtime, self.executor, self.hub, self.verifier)
        app.middlewares.append(self._healthz())
        self._runner = app_runner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await self._runner.setup()
        await GuardedSite(self._runner, self.config.host, self.config.port, ssl_context=self.config.tls).start()
        log.info("agent listening", node=self.config.name, address=self.config.address,
                 runtime=self.runtime.name, cluster=self.config.cluster_id)

    def _healthz(self) -> Middleware:
        """``/healthz`` turns 503 while one of this node's supervised tasks is dead."""

        @web.middleware
        async def healthz(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path == "/healthz" and not (health := self.health()).healthy:
                return health_response(health, node=self.config.name, runtime=self.runtime.name)
            return await handler(request)
        return healthz

    async def cleanup(self) -> None:
        """Close the listener and connections; containers keep running."""
        self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.executor.close()
        await self.runtime.close()
        if self.config.registration is not None:
            await self.config.registration.close()
        log.info("agent stopped", node=self.config.name)


def node_tls(cert: Path, key: Path) -> ssl.SSLContext:
    """The server context of an agent's HTTPS listener: its node certificate. Callers show no
    certificate: the HMAC signature is what authenticates them."""
    context = presenting(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), cert, key)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
