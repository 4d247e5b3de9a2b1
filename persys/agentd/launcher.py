"""Running agents as a process: one real node, or many hollow nodes (``--nodes N``) in one loop.

Builds each node's runtime and Node registration from plain settings and runs the agents
until SIGINT or SIGTERM. Hollow nodes are named ``<name>-0 … <name>-(N-1)`` and listen on
consecutive ports from ``base_port``, each with its own listener and Node, like kubemark.
Agents find the API server by DNS SRV when ``dns`` is set (default ``$PERSYS_DNS``), with
``server`` as the fallback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.events import EventHub
from persys.agentd.hmackeys import REFRESH_SECONDS
from persys.agentd.node import NodeRegistration
from persys.agentd.runtime import Runtime
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.client.api import ApiClient
from persys.client.discovery import pick_api_server
from persys.observability.logging import get_logger
from persys.renewal import finish_swap
from persys.security.keyring import Keyring

log = get_logger("agent")


@dataclass
class Credentials:
    """The node's mTLS client certificate for talking to the API."""

    ca: Path | None
    cert: Path | None
    key: Path | None


@dataclass
class LaunchSettings:
    """What ``persys agent`` was asked to run."""

    name: str
    host: str
    port: int
    runtime: str
    secrets: Keyring
    state_dir: Path
    server: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    advertise_host: str = ""
    nodes: int = 0
    parallelism: int = 8
    simulation: SimulationConfig = field(default_factory=SimulationConfig.from_env)
    dns: str = field(default_factory=lambda: os.environ.get("PERSYS_DNS", ""))  # HOST:PORT; "": no discovery
    zone: str = field(default_factory=lambda: os.environ.get("PERSYS_ZONE", "") or "persys.local")
    cluster_id: str = ""  # the cluster whose containers these nodes claim ("": containers without one)
    keyring_file: Path | None = None  # the file ``secrets`` came from: the keyring the agents follow is saved there
    keyring_refresh: float = REFRESH_SECONDS  # seconds between re-reads of the HMAC keyring from the API


def runtime_factory(settings: LaunchSettings, state_dir: Path) -> Callable[[str, EventHub], Runtime]:
    if settings.runtime == "simulated":
        return lambda node, hub: SimulatedRuntime(node, hub, settings.simulation)
    if settings.runtime == "docker":
        from persys.agentd.docker import DockerRuntime  # aiodocker only where Docker is used

        return lambda node, hub: DockerRuntime(node, hub, state_dir, cluster=settings.cluster_id)
    raise ValueError(f"unknown runtime {settings.runtime!r}: use docker or simulated")


def node_names(settings: LaunchSettings) -> list[tuple[str, int]]:
    """(node name, port) of every agent to run."""
    if settings.nodes <= 0:
        return [(settings.name, settings.port)]
    return [(f"{settings.name}-{i}", settings.port + i) for i in range(settings.nodes)]


def build_agents(settings: LaunchSettings, credentials: Callable[[str], Credentials]) -> list[Agent]:
    """One Agent per node; ``credentials(node)`` gives the node's certificate for registration."""
    agents = []
    for name, port in node_names(settings):
        state_dir = settings.state_dir / name if settings.nodes > 0 else settings.state_dir
        advertise = f"{settings.advertise_host or settings.host}:{port}"
        creds = credentials(name) if settings.server else None
        if creds is not None and creds.cert and creds.key:
            finish_swap(creds.cert, creds.key)  # a renewal the last run did not finish
        registration = _registration(settings, name, advertise, creds) if creds is not None else None
        renewable = (creds.cert, creds.key, creds.ca) if creds and creds.cert and creds.key and creds.ca \
            and settings.nodes <= 0 else None
        agents.append(Agent(AgentConfig(
            name=name, host=settings.host, port=port, secrets=settings.secrets,
            runtime_factory=runtime_factory(settings, state_dir), labels=settings.labels,
            parallelism=settings.parallelism, registration=registration, cluster_id=settings.cluster_id,
            certificate=renewable, keyring_file=settings.keyring_file, keyring_refresh=settings.keyring_refresh)))
    return agents


def _registration(settings: LaunchSettings, name: str, advertise: str, creds: Credentials) -> NodeRegistration:
    """The Node registration of ``name``, discovering API servers when ``settings.dns`` is set."""

    def connect(url: str) -> ApiClient:
        return ApiClient(url, ca=creds.ca, cert=creds.cert, key=creds.key, timeout=10.0)

    async def discover() -> str:
        return await pick_api_server(settings.server, settings.dns, settings.zone)

    return NodeRegistration(connect(settings.server), name, advertise, settings.labels, settings.runtime,
                            discover=discover if settings.dns else None, connect=connect)

