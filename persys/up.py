"""``persys up``: a whole cluster in one process, like k3s — etcd, API, controllers, DNS, one agent.

It creates what a new cluster needs under ``$PERSYS_HOME`` (PKI, HMAC secret, cluster id, CLI
config), starts a real ``etcd`` child on the data dir there, and runs every other component in
this event loop as tasks of one supervisor: the API (whose ``/healthz`` reports all of them), its
DNS registration, the DNS server, the controllers and the local agent. Ctrl-C / SIGTERM cancels
them all at once and then stops etcd, which their cleanup still needs; running it again resumes
the same cluster because the state lives in etcd's data dir and the containers carry their labels.

etcd runs under a supervisor of its own, opened before the others' and closed after them: when
the child dies it is reaped at once, ``/healthz`` and ``/readyz`` name it, and it is restarted
with back-off. A child that keeps dying (more than ``etcd_max_restarts`` deaths within
``etcd_restart_window`` seconds) is not this process's to fix: ``up`` stops and exits non-zero,
saying why, so that the supervisor above it (systemd) restarts it or a human looks.

The cluster id in the PKI is written to etcd on the first start and compared on every later one
(``persys.store.clusterid``); the local agent stamps it on its containers and claims no others.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import aiodocker
import yaml

from persys import deployments
from persys.agentd.daemon import Agent, node_tls
from persys.agentd.launcher import Credentials, LaunchSettings, build_agents
from persys.api.audit.auditor import Auditor, AuditSettings
from persys.api.context import ApiContext
from persys.api.server import ApiServer, server_certificate, tls_from_home
from persys.controllers.config import ControllersConfig
from persys.controllers.dnsregistrar import dns_registrar
from persys.controllers.manager import build_manager
from persys.dns.registration import register_api_server
from persys.dns.server import DnsServer
from persys.errors import PersysError, StoreUnavailable
from persys.gateway.config import GatewayConfig, GitHubSettings
from persys.gateway.server import Gateway
from persys.observability.logging import get_logger
from persys.resources.certificates import BOOTSTRAP_TOKEN
from persys.resources.kinds import default_registry
from persys.resources.model import ObjectMeta, Resource
from persys.runtime.clock import to_iso
from persys.runtime.supervisor import Named, Supervisor, run_until, stop_signals
from persys.security import pki
from persys.security.bootstrap import join_command, new_token, secret_hash
from persys.security.keyring import read_keyring
from persys.security.paths import HomePaths, read_cluster_id
from persys.store import Etcd, ObjectStore
from persys.store.clusterid import claim_cluster_id
from persys.store.server import EtcdServer, exit_reason

log = get_logger("up")

LOCALHOST = "127.0.0.1"
JOIN_TOKEN_TTL = 86400.0  # the token `persys up` prints a join command with


def default_node_name() -> str:
    """The host name as a DNS-1123 label (the local node's name)."""
    name = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")[:63]
    return name or "local"


@dataclass
class UpConfig:
    """Where ``persys up`` keeps its files and which ports it listens on (all on 127.0.0.1)."""

    home: Path
    etcd_port: int = 2379
    etcd_peer_port: int | None = None  # default: etcd_port + 1
    http_port: int = 7070
    api_port: int = 7443
    controllers_port: int = 7072
    agent_port: int = 7100
    dns_port: int = 5353
    node_name: str = ""
    zone: str = "persys.local"
    etcd_max_restarts: int = 5  # more deaths than this within etcd_restart_window seconds end `up`
    etcd_restart_window: float = 120.0
    audit: AuditSettings | None = None  # None: the default policy, files under home/audit
    gateway_port: int | None = None  # the gateway's HTTPS port (persys up's flag defaults to 8443); None: none
    github: GitHubSettings = field(default_factory=GitHubSettings)
    certificate_seconds: float = pki.CERT_SECONDS  # what `up` issues and the csr-signer signs; renewed at 2/3
    advertise: str = ""  # an address (IP or DNS name) of this host other hosts reach the API at; "": none

    @property
    def api_bind(self) -> str:
        """Where the API's mTLS listener binds: every address when another host must reach it, else loopback."""
        return "0.0.0.0" if self.advertise else LOCALHOST

    @property
    def join_url(self) -> str:
        """The API's URL for another host: at the advertised address (on this host alone: loopback)."""
        return f"https://{self.advertise or LOCALHOST}:{self.api_port}"

    @property
    def paths(self) -> HomePaths:
        return HomePaths(self.home)

    @property
    def server_url(self) -> str:
        return f"https://{LOCALHOST}:{self.api_port}"


async def check_docker() -> str:
    """Docker's version, or a PersysError that says how to start it."""
    try:
        async with asyncio.timeout(5):
            docker = aiodocker.Docker()
            try:
                version = await docker.version()
            finally:
                await docker.close()
    except (aiodocker.exceptions.DockerError, OSError, TimeoutError, ValueError) as e:
        raise PersysError(
            f"Docker is unreachable ({type(e).__name__}: {e}). Start it with `make dockerd`, or "
            "`dockerd --bridge=none --iptables=false &` as root (apt-get install docker.io if missing)") from e
    return str(version.get("Version", "?"))


def prepare_home(config: UpConfig) -> HomePaths:
    """PKI, HMAC secret, the local node's certificate and a config.yaml that points at this API."""
    sans = list(dict.fromkeys([*pki.SERVER_SANS, *([config.advertise] if config.advertise else [])]))
    paths = pki.init(config.home, server=config.server_url, server_sans=sans, lifetime=config.certificate_seconds)
    pki.write_config(paths, config.server_url, force=True)
    settings = yaml.safe_load(paths.config.read_text()) or {}
    settings.update(dns=f"{LOCALHOST}:{config.dns_port}", zone=config.zone)  # the CLI discovers API servers
    partial = paths.config.with_suffix(".tmp")
    partial.write_text(yaml.safe_dump(settings, sort_keys=False))
    partial.replace(paths.config)  # atomic: a CLI started meanwhile never reads half a file
    pki.issue(paths, f"node-{config.node_name}", "agents", lifetime=config.certificate_seconds)
    if config.gateway_port is not None:
        pki.issue(paths, "gateway", "gateway", lifetime=config.certificate_seconds)
    return paths


class EtcdChild:
    """The ``etcd`` child as a supervised service: start it, wait for its death, say why it died.

    Its supervisor restarts it with back-off. It keeps the deaths of the last ``window`` seconds;
    one more than ``max_restarts`` of them calls ``give_up`` with the reason, and the service ends.
    An etcd that never came up is not restarted: its first error is what ``up`` exits with.
    """

    name = "etcd"

    def __init__(self, server: EtcdServer, *, max_restarts: int, window: float,
                 give_up: Callable[[str], None]) -> None:
        self.server = server
        self.max_restarts, self.window, self.give_up = max_restarts, window, give_up
        self.ready = asyncio.Event()
        self._deaths: deque[float] = deque()
        self._attempt = 0  # deaths since it last came up
        self._last = ""
        self._came_up = False

    def state(self) -> str:
        """Empty while etcd is up, else what it is doing: ``restarting, attempt 2 (etcd killed by SIGKILL)``."""
        if self.ready.is_set():
            return ""
        return f"restarting, attempt {self._attempt} ({self._last})" if self._attempt else "starting"

    async def run(self) -> None:
        try:
            await self._run_once()
        except Exception as e:
            if self._came_up and self._died(e.message if isinstance(e, PersysError) else f"{type(e).__name__}: {e}"):
                return  # given up: a service that returns is not restarted
            raise
        finally:
            self.ready.clear()
            await self.server.terminate()

    async def _run_once(self) -> NoReturn:
        """Start etcd and wait for its death, raised as the error the supervisor logs and counts."""
        await self.server.start()
        self.ready.set()
        self._came_up, self._attempt = True, 0
        log.info("etcd running", pid=self.server.pid, url=self.server.url)
        raise StoreUnavailable(f"etcd {exit_reason(await self.server.wait_exit())}")

    def _died(self, reason: str) -> bool:
        """Count one death; True when that is one too many and ``give_up`` was called."""
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths[0] < now - self.window:
            self._deaths.popleft()
        self._attempt += 1
        self._last = reason
        if len(self._deaths) <= self.max_restarts:
            return False
        self.give_up(f"etcd died {len(self._deaths)} times within {self.window:g}s (last: {reason}); "
                     f"persys up exits so that its supervisor restarts it (etcd log: {self.server.log_path})")
        return True


class Cluster:
    """Every component of ``persys up``: etcd first, the rest under one supervisor, etcd last."""

    def __init__(self, config: UpConfig, *, announce: str | None = None) -> None:
        self.config = config
        self.paths = config.paths
        self.announce = announce  # printed with the summary once everything is up (None: print nothing)
        peer = config.etcd_peer_port or config.etcd_port + 1
        self.etcd_server = EtcdServer(self.paths.etcd_data, client_port=config.etcd_port, peer_port=peer)
        self.etcd = Etcd(self.etcd_server.url)
        self.etcd_child = EtcdChild(self.etcd_server, max_restarts=config.etcd_max_restarts,
                                    window=config.etcd_restart_window, give_up=self._give_up)
        self.ready = asyncio.Event()  # set once every component is up
        self.cluster_id = ""  # etcd's, once claimed
        self.failure = ""  # why `up` stopped by itself ("": it was asked to)
        self.gateway: Gateway | None = None
        self._stop = asyncio.Event()

    async def start(self, supervisor: Supervisor) -> None:
        """Start every component but etcd under ``supervisor``, each once the ones it needs are up."""
        config = self.config
        keyring = read_keyring(self.paths.hmac_secret)  # etcd's first, until a rotation changes etcd's
        auditor = Auditor(config.audit) if config.audit is not None else Auditor.default(config.home / "audit")
        auditor.set_cluster(self.cluster_id)
        api = ApiServer(ApiContext(self.etcd, hmac_secret=keyring, audit=auditor), tls_from_home(config.home),
                        listen=(LOCALHOST, config.http_port), secure_listen=(config.api_bind, config.api_port),
                        etcd_state=self.etcd_child.state, certificate=server_certificate(config.home))
        await api.start(supervisor)
        await register_api_server(self.etcd, config.zone, LOCALHOST, config.api_port, supervisor=supervisor)
        await DnsServer(self.etcd, config.zone, LOCALHOST, config.dns_port).start(supervisor)
        await supervisor.start(Named("controllers", self._controllers))
        await deployments.runner(config.server_url, config.home).start(supervisor)
        await self._agent().start(supervisor)
        if config.gateway_port is not None:
            self.gateway = Gateway(GatewayConfig(
                home=config.home, servers=(config.server_url,), listen=(LOCALHOST, config.gateway_port),
                dns=f"{LOCALHOST}:{config.dns_port}", zone=config.zone, github=config.github,
                certificate_seconds=config.certificate_seconds))
            await self.gateway.start(supervisor)
        self.ready.set()
        if self.announce is not None:
            try:
                hint = await self.join_hint()
            except PersysError as e:  # etcd may be down this very moment: the cluster runs on, without a token
                hint = f"No join command now ({e.message}): `persys token create --print-join-command` makes one."
            print(self.summary(), self.announce, hint, sep="\n", flush=True)

    async def join_hint(self) -> str:
        """A fresh bootstrap token (a day) and the command another node joins this cluster with."""
        token_id, secret = new_token()
        await ObjectStore(self.etcd, default_registry()).create(Resource(
            kind=BOOTSTRAP_TOKEN.kind, metadata=ObjectMeta(name=token_id), spec={
                "secretHash": secret_hash(secret), "expires": to_iso(time.time() + JOIN_TOKEN_TTL),
                "description": "made by persys up", "roles": ["agents"], "nodeNames": [], "addresses": []}))
        command = join_command(self.config.join_url, f"{token_id}.{secret}", self.paths.ca_cert.read_bytes(),
                               listen=f"{LOCALHOST}:{self.config.agent_port + 1}")
        where = ("" if self.config.advertise else f"\n  (the API listens on {LOCALHOST} only: for another host, "
                 "start with --advertise ADDRESS, an address of this host it can reach)")
        return f"Join another node (token valid 24h; persys token create makes more):\n  {command}{where}"

    async def _controllers(self) -> None:
        """One manager per run, so that a restart after a crash starts from a clean one."""
        config = self.config
        await build_manager(self.etcd_server.url, home=config.home, listen=f"{LOCALHOST}:{config.controllers_port}",
                            config=ControllersConfig(certificate_seconds=config.certificate_seconds),
                            extra=[dns_registrar(config.zone)]).run()

    def _agent(self) -> Agent:
        config = self.config
        identity = f"node-{config.node_name}"
        settings = LaunchSettings(
            name=config.node_name, host=LOCALHOST, port=config.agent_port, runtime="docker",
            secrets=read_keyring(self.paths.hmac_secret), keyring_file=self.paths.hmac_secret,
            state_dir=self.paths.state / f"agent-{config.node_name}", server=config.server_url,
            dns=f"{LOCALHOST}:{config.dns_port}", zone=config.zone, cluster_id=self.cluster_id)
        credentials = Credentials(self.paths.ca_cert, self.paths.cert(identity), self.paths.key(identity))
        agent = build_agents(settings, lambda _node: credentials)[0]
        agent.serve_tls(node_tls(self.paths.cert(identity), self.paths.key(identity)))  # the certificate is its proof
        return agent

    def summary(self) -> str:
        c = self.config
        return "\n".join([
            f"Persys is up (home {c.home}, cluster {self.cluster_id}, node {c.node_name})",
            f"  etcd         {self.etcd_server.url}  (data {self.paths.etcd_data})",
            f"  API (mTLS)   https://{LOCALHOST}:{c.api_port}"
            + (f"  (and {c.join_url} for other hosts: listening on every address)" if c.advertise else ""),
            f"  API (plain)  http://{LOCALHOST}:{c.http_port}  /healthz /readyz /metrics /openapi.json",
            f"  controllers  http://{LOCALHOST}:{c.controllers_port}/metrics",
            f"  agent        https://{LOCALHOST}:{c.agent_port}  (docker runtime)",
            f"  DNS          {LOCALHOST}:{c.dns_port} udp+tcp, zone {c.zone}",
            *([f"  gateway      {self.gateway.url}  (GitHub login "
               f"{'with ' + c.github.url if c.github.enabled else 'off: --github-client-id'}; persys login)"]
              if self.gateway is not None else []),
            *([f"  dashboard    {self.gateway.url}/ui/"] if self.gateway is not None else []),
            f"  CLI config   {self.paths.config}",
            "Try: persys apply -f manifests/ --wait; persys get workloads. Ctrl-C stops everything.",
        ])

    async def run(self, stop: asyncio.Event) -> None:
        """Start etcd, run the rest until ``stop`` is set, stop etcd after every other part has ended.

        Raises StoreUnavailable when it stopped by itself: etcd was given up.
        """
        self._stop = stop
        try:
            async with Supervisor("up-etcd") as supervisor:  # left last: etcd outlives the others' cleanup
                await supervisor.start(self.etcd_child, ready=self.etcd_child.ready)
                self.cluster_id = await claim_cluster_id(self.etcd, read_cluster_id(self.paths))
                await run_until(stop, "up", self.start)
        finally:
            self.ready.clear()
            await self.etcd.close()
            log.info("persys up stopped", failure=self.failure or None)
        if self.failure:
            raise StoreUnavailable(self.failure)

    def _give_up(self, reason: str) -> None:
        log.error("giving up", reason=reason)
        self.failure = reason
        self._stop.set()


async def run(config: UpConfig, *, announce: bool = True) -> None:
    """Run the cluster until SIGINT or SIGTERM."""
    config.node_name = config.node_name or default_node_name()
    docker_version = await check_docker()
    prepare_home(config)
    with stop_signals() as stop:
        await Cluster(config, announce=f"  docker       {docker_version}" if announce else None).run(stop)
