"""``persys agent``: the node daemon (one real node, or N hollow nodes with ``--runtime simulated``).

A node that registers with the API serves HTTPS with its node certificate (``--tls``, the default
for one node with ``--server``), so that the control plane can verify whom it calls. Hollow nodes,
and agents that run without an API, serve plain HTTP unless ``--tls`` is given.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from persys.cli.session import CliState, option
from persys.errors import BadRequest
from persys.observability import logging as plog
from persys.observability import tracing
from persys.security.keyring import read_keyring
from persys.security.paths import HomePaths, read_cluster_id

if TYPE_CHECKING:
    from persys.agentd.daemon import Agent
    from persys.agentd.join import JoinFiles

CLUSTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = val
    return labels


def cluster_id(paths: HomePaths, given: str) -> str:
    """``--cluster-id``, else the id in the home's PKI; "" (and a warning) when there is none."""
    found = given or read_cluster_id(paths)
    if found and not CLUSTER_ID.fullmatch(found):
        raise click.BadParameter(f"{found!r} is not a cluster id (letters, digits, '.', '_', '-')",
                                 param_hint="--cluster-id")
    if not found:
        click.echo(f"warning: no cluster id (pass --cluster-id, or copy the cluster's pki/cluster-id to "
                   f"{paths.cluster_id}): this agent labels its containers with no cluster and manages only "
                   "containers that have none", err=True)
    return found


def node_credentials(paths: HomePaths, node: str, cert: Path | None, key: Path | None,
                     ca: Path | None, sans: tuple[str, ...] = ()) -> tuple[Path, Path, Path]:
    """The node's certificate (client of the API, server of its HTTPS listener for ``sans``); issued on
    the spot, or again when it lacks one of ``sans``, when the cluster CA's key is at hand."""
    identity = f"node-{node}"
    cert, key, ca = cert or paths.cert(identity), key or paths.key(identity), ca or paths.ca_cert
    if paths.ca_key.exists() and cert == paths.cert(identity):
        from persys.security import pki

        before = cert.read_bytes() if cert.exists() else b""
        cert, key = pki.issue(paths.home, identity, "agents", sans=sans)
        if cert.read_bytes() != before:
            click.echo(f"issued {cert} for node {node}", err=True)
        return cert, key, ca
    if cert.exists() and key.exists():
        return cert, key, ca
    raise BadRequest(f"no certificate for node {node} at {cert}: on the machine holding the cluster CA run "
                     f"`persys pki issue --identity {identity} --role agents` and copy {cert.name}, "
                     f"{key.name} and ca.crt into {paths.pki}")


def _tls_hosts(host: str, advertise: str) -> tuple[str, ...]:
    """The names the node certificate must serve TLS for: the hosts the control plane may call."""
    return tuple(h for h in dict.fromkeys((host, advertise)) if h and h not in ("0.0.0.0", "::"))


def _join(url: str, token: str, ca_hash: str, node: str, hosts: tuple[str, ...], state_dir: Path, timeout: float,
          nodes: int) -> JoinFiles:
    """Join with a bootstrap token (``persys.agentd.join``) before the agent starts; the node's files."""
    from persys.agentd.join import JoinFiles, JoinSettings, join
    from persys.security.bootstrap import check_ca_hash, split_token

    if nodes:
        raise click.BadParameter("hollow nodes (--nodes) cannot join with a token", param_hint="--join")
    if not url.startswith("https://"):
        raise click.BadParameter(f"{url!r} is not an https:// URL of an API server", param_hint="--join")
    if split_token(token) is None:
        raise click.BadParameter("a bootstrap token <id>.<secret> is required (persys token create)",
                                 param_hint="--token")
    if problem := check_ca_hash(ca_hash):
        raise click.BadParameter(problem, param_hint="--ca-hash")
    plog.configure()
    tracing.setup("persys-agent")
    settings = JoinSettings(url.rstrip("/"), token, ca_hash.strip().lower(), node, hosts, timeout)
    files = asyncio.run(join(settings, JoinFiles(state_dir / "pki")))
    tracing.flush()
    return files


def _serve_tls(agents: list[Agent], files: Callable[[str], tuple[Path, Path, Path]]) -> None:
    from persys.agentd.daemon import node_tls

    for node in agents:
        cert, key, _ = files(node.config.name)
        node.serve_tls(node_tls(cert, key))


@click.command()
@option("--name", default=socket.gethostname(), show_default=True, help="Node name (hollow nodes: NAME-0…).")
@option("--listen", default="127.0.0.1:7100", show_default=True, help="Agent API address HOST:PORT.")
@option("--advertise", default="", help="Host the control plane should call (default: the listen host).")
@option("--server", default="https://127.0.0.1:7443", show_default=True,
        help="API server URL for Node registration and heartbeats ('' to run without).")
@option("--dns", default="", help="DNS server HOST:PORT to discover API servers from ('' to use --server only).")
@option("--zone", default="persys.local", show_default=True, help="Cluster DNS zone (SRV _persys-api._tcp.<zone>).")
@option("--runtime", type=click.Choice(["docker", "simulated"]), default="docker", show_default=True)
@option("--cluster-id", "cluster", default="", help="The cluster whose containers this node claims "
        "(default: $PERSYS_HOME/pki/cluster-id).")
@option("--label", "labels", multiple=True, help="Node label KEY=VALUE (repeatable).")
@option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Agent state (compose checkouts); default $PERSYS_HOME/state/agent-<name>.")
@option("--cert", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Node client certificate.")
@option("--key", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Node client key.")
@option("--ca", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Cluster CA certificate.")
@option("--tls/--no-tls", default=None, help="Serve HTTPS with the node certificate (default: with --server, "
        "for one node; hollow nodes serve plain HTTP).")
@option("--hmac-secret", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="File holding the agents' HMAC secret or keyring (default $PERSYS_HOME/pki/agent-hmac.secret); the "
             "keyring read from the API is saved there.")
@option("--hmac-refresh", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
        help="Seconds between re-reads of the HMAC keyring from the API (rotations: keep it well under the "
             "overlap window).")
@option("--join", default="", help="Join the cluster whose API server is at https://HOST:PORT with --token: the "
        "node's certificate, the CA and the HMAC secret are fetched into <state-dir>/pki (replaces --server).")
@option("--token", default="", help="Bootstrap token for --join (persys token create): <id>.<secret>.")
@option("--ca-hash", default="", help="For --join: sha256:<hex> of the cluster CA's public key (SubjectPublicKeyInfo),"
        " as persys up and persys token create print it; the join stops before sending anything if it differs.")
@option("--join-timeout", type=float, default=300.0, show_default=True,
        help="Seconds to wait for the certificate to be signed.")
@option("--parallelism", type=int, default=8, show_default=True, help="Operations run at once (across uids).")
@option("--nodes", type=int, default=0, help="Simulated runtime: run this many hollow nodes in one process.")
@option("--base-port", type=int, default=None, help="Hollow nodes: first port (default: the --listen port).")
@option("--sim-start-latency", type=float, default=None, help="Simulated runtime: seconds to start a container.")
@option("--sim-exit-after", type=float, default=None, help="Simulated runtime: containers exit after seconds.")
@click.pass_obj
def agent(state: CliState, name: str, listen: str, advertise: str, server: str, dns: str, zone: str, runtime: str,
          cluster: str, labels: tuple[str, ...], state_dir: Path | None, cert: Path | None, key: Path | None,
          ca: Path | None, tls: bool | None, hmac_secret: Path | None, hmac_refresh: float, join: str, token: str,
          ca_hash: str, join_timeout: float, parallelism: int, nodes: int, base_port: int | None,
          sim_start_latency: float | None, sim_exit_after: float | None) -> None:
    """Run the node agent: an HMAC-signed HTTP API driving Docker (or hollow containers)."""
    from persys.agentd.launcher import Credentials, LaunchSettings, build_agents
    from persys.agentd.simulated import SimulationConfig
    from persys.runtime.supervisor import Supervisor, run_process

    if nodes and runtime != "simulated":
        raise click.BadParameter("--nodes needs --runtime simulated", param_hint="--nodes")
    paths = HomePaths(state.home)
    host, port = _address(listen)
    state_dir = state_dir or paths.state / f"agent-{name}"
    if join:
        joined = _join(join, token, ca_hash, name, _tls_hosts(host, advertise), state_dir, join_timeout, nodes)
        server, cert, key, ca, hmac_secret = join, joined.cert, joined.key, joined.ca, joined.hmac_secret
        cluster = cluster or joined.cluster_id.read_text().strip()
    secret_file = hmac_secret or paths.hmac_secret
    keyring = read_keyring(secret_file)
    simulation = SimulationConfig.from_env()
    if sim_start_latency is not None:
        simulation.start_latency = sim_start_latency
    if sim_exit_after is not None:
        simulation.exit_after = sim_exit_after
    settings = LaunchSettings(
        name=name, host=host, port=base_port if base_port is not None and nodes else port, runtime=runtime,
        secrets=keyring, keyring_file=secret_file, keyring_refresh=hmac_refresh,
        state_dir=state_dir, server=server, labels=_labels(labels),
        advertise_host=advertise, nodes=nodes, parallelism=parallelism, simulation=simulation, dns=dns, zone=zone,
        cluster_id=cluster_id(paths, cluster))

    def files(node: str) -> tuple[Path, Path, Path]:
        return node_credentials(paths, node, cert if not nodes else None, key if not nodes else None, ca,
                                _tls_hosts(host, advertise))

    def credentials(node: str) -> Credentials:
        c, k, a = files(node)
        return Credentials(ca=a if a.exists() else None, cert=c, key=k)

    agents = build_agents(settings, credentials)
    if tls or (tls is None and server and not nodes):  # by default one node registered with the API
        _serve_tls(agents, files)

    async def start(supervisor: Supervisor) -> None:  # every node's tasks under the process's one supervisor
        for node in agents:
            await node.start(supervisor)

    plog.configure()
    tracing.setup("persys-agent")
    asyncio.run(run_process("agent", start))
