"""``persys up``: the all-in-one cluster (etcd child, API, controllers, DNS, one local agent)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import click

from persys.cli.audit import audit_options, audit_settings
from persys.cli.gateway import github_options, github_settings
from persys.cli.session import CliState, option
from persys.observability import logging as plog
from persys.observability import tracing
from persys.resources.definitions import check_subdomain
from persys.security.pki import CERT_SECONDS


@click.command()
@option("--etcd-port", type=int, default=2379, show_default=True, help="etcd client port.")
@option("--etcd-peer-port", type=int, default=None, help="etcd peer port (default: etcd port + 1).")
@option("--http-port", type=int, default=7070, show_default=True, help="API plain listener.")
@option("--api-port", type=int, default=7443, show_default=True, help="API mTLS listener.")
@option("--controllers-port", type=int, default=7072, show_default=True, help="Controllers metrics/health.")
@option("--agent-port", type=int, default=7100, show_default=True, help="Local agent API.")
@option("--dns-port", type=int, default=5353, show_default=True, help="DNS server (udp and tcp).")
@option("--node-name", default="", help="Name of the local node (default: the host name).")
@option("--zone", default="persys.local", show_default=True, help="DNS zone of the cluster.")
@option("--etcd-max-restarts", type=click.IntRange(min=0), default=5, show_default=True,
        help="Restarts of a dying etcd child allowed within --etcd-restart-window; one more and `up` exits 1.")
@option("--etcd-restart-window", type=click.FloatRange(min=1), default=120.0, show_default=True,
        help="Seconds over which etcd restarts are counted.")
@option("--gateway-port", type=click.IntRange(0, 65535), default=8443, show_default=True,
        help="The gateway's HTTPS listener (GitHub login, webhooks); 0: no gateway.")
@option("--advertise", default="", metavar="ADDRESS",
        help="An address (IP or DNS name) of this host that other hosts reach the API at: the API's mTLS listener "
             "then binds every address, its certificate names ADDRESS, and the join command uses it.")
@option("--certificate-seconds", type=click.FloatRange(min=10), default=CERT_SECONDS, show_default=True,
        help="Lifetime of every certificate `up` issues or its csr-signer signs (the CA's is ten years); each "
             "component renews its own at 2/3 of it.")
@github_options
@audit_options
@click.pass_obj
def up(state: CliState, /, etcd_port: int, etcd_peer_port: int | None, http_port: int, api_port: int,
       controllers_port: int, agent_port: int, dns_port: int, node_name: str, zone: str,
       etcd_max_restarts: int, etcd_restart_window: float, gateway_port: int, github_client_id: str,
       github_client_secret: str, github_url: str, github_api_url: str, certificate_seconds: float,
       advertise: str, **audit: Any) -> None:
    """Run a whole cluster in this process; Ctrl-C stops it, running it again resumes it."""
    from persys.up import UpConfig, run

    settings = audit_settings(state.home, **audit)  # a bad policy stops it here, before anything starts
    plog.configure()
    tracing.setup("persys")
    config = UpConfig(home=state.home, etcd_port=etcd_port, etcd_peer_port=etcd_peer_port, http_port=http_port,
                      api_port=api_port, controllers_port=controllers_port, agent_port=agent_port,
                      dns_port=dns_port, node_name=node_name, zone=zone, etcd_max_restarts=etcd_max_restarts,
                      etcd_restart_window=etcd_restart_window, audit=settings, gateway_port=gateway_port or None,
                      github=github_settings(github_client_id, github_client_secret, github_url, github_api_url),
                      certificate_seconds=certificate_seconds, advertise=check_advertise(advertise))
    asyncio.run(run(config))


def check_advertise(value: str) -> str:
    """``--advertise``: an IP address or a DNS name, never a URL or HOST:PORT (BadParameter naming it)."""
    value = value.strip()
    if not value:
        return ""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if problem := check_subdomain(value.lower()):
        raise click.BadParameter(f"{value!r} is neither an IP address nor a DNS name ({problem})",
                                 param_hint="--advertise")
    return value.lower()
