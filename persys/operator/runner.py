"""``OperatorRunner``: an operator as its own process, talking to the API under its own identity.

The runner is the operator's host, the counterpart of ``persys.runtime.Manager`` for processes
that never see etcd: its informers list and watch through the API (``informer``), its leader
holds a Lease through the API (``leader``), and every write its handlers make goes through a
client fenced by that Lease. It runs as a ``Component`` under a ``Supervisor``: each informer
and the leader loop are supervised tasks, so a crash outside a handler (whose failures stay
with their object) is logged, turns ``/healthz`` red and is restarted with back-off.
Informers run all the time (a standby keeps warm caches); the controllers run only while the
Lease is held and are cancelled the moment it is lost. ``/metrics`` and ``/healthz`` are served
on ``listen``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from persys.client.api import ApiClient
from persys.errors import BadRequest, NotFound, Unavailable
from persys.observability.logging import get_logger
from persys.operator.events import EventRecorder
from persys.operator.handlers import HandlerController
from persys.operator.informer import api_informer
from persys.operator.leader import FencedClient, LeaseElector
from persys.operator.operator import Operator
from persys.operator.owners import OWNER_INDEX, controller_uid
from persys.renewal import CertificateRenewer
from persys.resources.kinds import default_registry
from persys.resources.model import Resource
from persys.resources.registry import Registry
from persys.runtime.backoff import Backoff
from persys.runtime.clock import Clock, SystemClock
from persys.runtime.expectations import Expectations
from persys.runtime.informer import Informer, stats
from persys.runtime.manager import lead
from persys.runtime.supervisor import Component, Named, StatusListener, Supervisor

log = get_logger("operator")


@dataclass(frozen=True)
class Connection:
    """Where the API is and which certificate (role ``operators``) the operator presents."""

    server: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def client(self, registry: Registry, cls: type[ApiClient] = ApiClient, **kwargs: Any) -> ApiClient:
        return cls(self.server, ca=self.ca, cert=self.cert, key=self.key, registry=registry, **kwargs)

    def renewal(self) -> list[Named]:
        """The task that renews the certificate (``persys.renewal``), when there is one."""
        if self.cert is None or self.key is None or self.ca is None:
            return []
        renewer = CertificateRenewer(self.cert.stem, self.cert, self.key, self.ca, lambda: self.server)
        return [Named("certificate", renewer.run)]


class _Status(StatusListener):
    """``/metrics``, and a ``/healthz`` that also tells the Lease, the identity and the informers."""

    def __init__(self, host: str, port: int, runner: OperatorRunner) -> None:
        super().__init__(host, port, runner)
        self.runner = runner

    async def healthz(self, request: web.Request) -> web.Response:
        runner = self.runner
        informers = [stats(i) for i in runner.informers()]
        synced = all(i["synced"] for i in informers)
        health = runner.health()
        body = {"status": "ok" if synced and health.healthy else "failing" if not health.healthy else "starting",
                "operator": runner.name, "leader": runner.elector.is_leader, "identity": runner.elector.identity,
                "controllers": [c.name for c in runner.controllers], "informers": informers, **health.to_dict()}
        return web.json_response(body, status=200 if synced and health.healthy else 503)


class OperatorRunner(Component):
    """Runs one ``Operator``: informers, the Lease, the controllers while leading, /metrics and /healthz."""

    def __init__(self, operator: Operator, connection: Connection, *, registry: Registry | None = None,
                 lease_namespace: str = "default", lease_ttl: int = 15, identity: str | None = None,
                 namespace: str | None = None, listen: tuple[str, int] | None = ("127.0.0.1", 7074),
                 stall_seconds: float = 300.0, clock: Clock | None = None) -> None:
        super().__init__(f"operator-{operator.name}")
        self.operator = operator
        self.name = operator.name
        self._registry = registry if registry is not None else default_registry()  # its own: discovery adds to it
        self.namespace = namespace
        self.stall_seconds = stall_seconds
        self.clock = clock or SystemClock()
        self.connection = connection
        self.reader = connection.client(self._registry)  # lists, watches and the Lease itself
        self.elector = LeaseElector(self.reader, operator.name, namespace=lease_namespace, identity=identity,
                                    duration=lease_ttl)
        self.client: ApiClient = connection.client(self._registry, FencedClient, elector=self.elector)
        self.recorder = EventRecorder(self.client, operator.name)
        self.written: Expectations[Resource] = Expectations(clock=self.clock)
        self.leading = asyncio.Event()
        self._informers: dict[str, Informer] = {}
        self._running: set[str] = set()  # informers started under the supervisor
        self._listener = _Status(*listen, self) if listen is not None else None
        self.controllers: list[HandlerController] = []

    # -- what controllers and handlers read from their host --

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def port(self) -> int | None:
        return self._listener.port if self._listener is not None else None

    def informer(self, kind: str, namespace: str | None = None) -> Informer:
        """The shared informer of ``kind`` (created on first use; ``background`` or ``owned_informer`` runs it)."""
        name = self.registry.get(kind).kind
        if name not in self._informers:
            self._informers[name] = api_informer(self.reader, name, namespace=self.namespace,
                                                 stall_seconds=self.stall_seconds)
        return self._informers[name]

    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    async def owned_informer(self, kind: str, owner_kind: str) -> Informer:
        """``kind``'s synced informer, indexed by controller, its changes enqueueing their ``owner_kind`` owners.

        A kind no handler declared in ``owns`` is learnt here, the first time ``ctx.ensure`` or
        ``ctx.owned`` names it: its informer starts now and its controllers watch it from now on.
        """
        informer = self.informer(kind)
        informer.add_index(OWNER_INDEX, controller_uid)
        for controller in self.controllers:
            if controller.kind == owner_kind and informer.kind not in controller.owns:
                controller.owns.append(informer.kind)  # watched from the next term on; and now:
                if self.leading.is_set():
                    controller.connect_owned(informer)
        if informer.kind not in self._running and self.supervisor is not None:
            self._running.add(informer.kind)
            await self.supervisor.start(Named(f"informer-{informer.kind}", informer.run))
        await informer.wait_synced(self.stall_seconds)
        return informer

    # -- running --

    async def open(self) -> None:
        if self._listener is not None:
            await self._listener.start()
            log.info("serving metrics and health", operator=self.name, port=self._listener.port)
        if not self.controllers:
            await self._learn_kinds()
            self.controllers = self.operator.controllers(self)
            for controller in self.controllers:
                controller.attach(self)

    async def _learn_kinds(self) -> None:
        """Wait until the API serves every kind the operator names (its ResourceDefinition may come later)."""
        retry = Backoff(0.5, 10.0)
        for api_version, name in self.operator.kinds():
            while True:
                try:
                    kind = await self.reader.resolve(name)
                    break
                except (NotFound, Unavailable) as e:
                    delay = retry.next()
                    log.warning("waiting for the API to serve a kind", kind=name, error=e.message,
                                retry_in=round(delay, 1))
                    await asyncio.sleep(delay)
            if api_version and kind.api_version != api_version:
                raise BadRequest(f"{self.name} handles {name} of {api_version}, but the API serves {name} "
                                 f"as {kind.api_version}")

    def background(self) -> list[Any]:
        self._running |= set(self._informers)
        services: list[Any] = [Named(f"informer-{i.kind}", i.run) for i in self.informers()]
        return [*services, Named("leader", self._lead), *self.connection.renewal()]

    async def cleanup(self) -> None:
        self.leading.clear()
        await asyncio.shield(self._close())

    async def _close(self) -> None:
        await self.elector.resign()
        await self.client.close()
        await self.reader.close()
        if self._listener is not None:
            await self._listener.stop()
        log.info("operator stopped", operator=self.name)

    async def _lead(self) -> None:
        for informer in self.informers():
            await informer.synced.wait()
        await lead(self.elector, self.controllers, self.leading, on_term=self.written.clear, operator=self.name)

    async def run_until_stopped(self, stop: asyncio.Event) -> None:
        """Run under a supervisor of its own until ``stop`` is set (``persys operator run``)."""
        async with Supervisor(self.name) as supervisor:
            await self.start(supervisor)
            await stop.wait()
