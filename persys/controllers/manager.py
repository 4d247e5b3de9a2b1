"""``build_manager``: Persys's controllers (scheduler, reconciler, status, monitor, gc, git-poller, csr-signer,
token-cleaner) in one manager.

``persys controllers`` runs what this returns; ``persys up`` runs it in-process next to the
API, DNS and an agent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from persys.controllers.agents import AgentPool
from persys.controllers.config import ControllersConfig
from persys.controllers.csrsigner import CsrSigner
from persys.controllers.gc import GarbageCollector
from persys.controllers.gitpoll import GitPoller
from persys.controllers.monitor import Monitor
from persys.controllers.reconciler import Reconciler
from persys.controllers.scheduler import Scheduler
from persys.controllers.status import StatusController
from persys.controllers.tokencleaner import TokenCleaner
from persys.resources.kinds import default_registry
from persys.resources.registry import Registry
from persys.runtime.clock import Clock
from persys.runtime.manager import Manager
from persys.security.keyring import Keyring, read_keyring
from persys.security.paths import HomePaths, default_home
from persys.store.etcd import Etcd, EtcdTLS
from persys.store.hmackeys import StoredKeyring

ALL_CONTROLLERS = ("scheduler", "reconciler", "status", "monitor", "gc", "git-poller", "csr-signer", "token-cleaner")

Extra = Callable[[Manager], None]


def parse_listen(listen: str | None) -> tuple[str, int] | None:
    """``HOST:PORT`` → (host, port); None or empty disables the metrics/health listener."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    return host or "127.0.0.1", int(port)


def build_manager(etcd_endpoints: str | Sequence[str], *, home: Path | None = None,
                  listen: str | None = "127.0.0.1:7072", config: ControllersConfig | None = None,
                  hmac_secret: bytes | None = None, identity: str | None = None, clock: Clock | None = None,
                  controllers: Sequence[str] = ALL_CONTROLLERS, extra: Sequence[Extra] = (),
                  registry: Registry | None = None, etcd_tls: EtcdTLS | None = None) -> Manager:
    """A manager running ``controllers`` against the etcd at ``etcd_endpoints``.

    The agents' HMAC keyring is etcd's (``persys.store.hmackeys``), re-read every
    ``config.hmac_refresh_seconds``; where etcd has none yet the manager writes its own there:
    ``hmac_secret`` (key id ``default``) or the keyring in ``$PERSYS_HOME/pki/agent-hmac.secret``.
    ``controllers`` picks which of these run (all by default); ``extra`` callables add more to the
    manager before it runs (``dns_registrar(zone)``, your own).
    ``etcd_tls`` secures its etcd connection. The manager owns its etcd connection and agent clients
    and closes them. Its kinds are the built-in ones in a ``registry`` of its own (the garbage
    collector adds custom kinds to it).
    """
    unknown = set(controllers) - set(ALL_CONTROLLERS)
    if unknown:
        raise ValueError(f"unknown controllers: {', '.join(sorted(unknown))}; known: {', '.join(ALL_CONTROLLERS)}")
    config = config or ControllersConfig()
    paths = HomePaths(home or default_home())
    seed = Keyring.single(hmac_secret) if hmac_secret is not None else read_keyring(paths.hmac_secret)
    etcd = Etcd(etcd_endpoints, tls=etcd_tls)
    manager = Manager(etcd, registry=registry or default_registry(), component="controllers", identity=identity,
                      lease_ttl=config.lease_ttl, clock=clock, listen=parse_listen(listen),
                      stall_seconds=config.watch_stall_seconds, owns_etcd=True)
    keyring = StoredKeyring(etcd, seed, interval=config.hmac_refresh_seconds)
    manager.beside(keyring, ready=keyring.tried)  # a home's file may be older than etcd's keyring: read it first
    agents = AgentPool(keyring.signing, timeout=config.agent_timeout, ca=paths.ca_cert)
    manager.on_close(agents.close)
    if "scheduler" in controllers:
        manager.add(Scheduler(retry_seconds=config.schedule_retry_seconds, node_lost_timeout=config.node_lost_timeout))
    if "reconciler" in controllers:
        manager.add(Reconciler(agents, config))
    if "status" in controllers:
        manager.add(StatusController(agents, config))
    if "monitor" in controllers:
        manager.add(Monitor(config))
    if "gc" in controllers:
        manager.add(GarbageCollector())
    if "git-poller" in controllers:
        manager.add(GitPoller(config.git_poll_seconds, paths.state / "controllers"))
    if "csr-signer" in controllers and paths.ca_key.exists():  # signs only where the CA's key is
        manager.add(CsrSigner(paths.ca_cert, paths.ca_key, config.certificate_seconds))
    if "token-cleaner" in controllers:
        manager.add(TokenCleaner())
    for add in extra:
        add(manager)
    return manager
