"""``persys gateway``: the HTTPS front door for people and tools, with GitHub login (see persys.gateway)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from persys.cli.config import load
from persys.cli.session import CliState, option
from persys.gateway.config import GitHubSettings
from persys.observability import logging as plog
from persys.observability import tracing

FILE = click.Path(dir_okay=False, exists=True, path_type=Path)
F = TypeVar("F", bound=Callable[..., Any])


def github_options(f: F) -> F:
    """The GitHub OAuth app and GitHub's URLs (``persys gateway`` and ``persys up``)."""
    f = option("--github-api-url", default="https://api.github.com", show_default=True, help="GitHub API URL.")(f)
    f = option("--github-url", default="https://github.com", show_default=True,
               help="GitHub (or GitHub Enterprise) web URL.")(f)
    f = option("--github-client-secret", default="", help="Its client secret (the browser's web flow needs it).")(f)
    return option("--github-client-id", default="", help="GitHub OAuth app client id; without it, login is off.")(f)


def github_settings(github_client_id: str, github_client_secret: str, github_url: str,
                    github_api_url: str) -> GitHubSettings:
    return GitHubSettings(github_client_id, github_client_secret, github_url, github_api_url)


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r} is not HOST:PORT", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command()
@option("--listen", default="127.0.0.1:8443", show_default=True, help="HTTPS listener for people and tools.")
@option("--server", "servers", multiple=True,
        help="API server URL to fall back to (repeatable); default: the server of $PERSYS_HOME/config.yaml.")
@option("--dns", default=None, help="Cluster DNS server HOST:PORT: find API servers by SRV _persys-api._tcp.<zone>.")
@option("--zone", default="persys.local", show_default=True, help="DNS zone of the cluster.")
@option("--identity", default="gateway", show_default=True,
        help="Client certificate in $PERSYS_HOME/pki (persys pki issue --identity NAME --role gateway).")
@option("--cert", type=FILE, default=None, help="Listener certificate (default: one the cluster CA signs).")
@option("--key", type=FILE, default=None, help="Its private key.")
@option("--public-url", default="", help="How browsers reach this gateway (the GitHub callback's base URL).")
@github_options
@option("--access-ttl", type=click.IntRange(30, 86400), default=900, show_default=True,
        help="Seconds an access token lives.")
@option("--refresh-ttl", type=click.IntRange(60, 365 * 86400), default=30 * 86400, show_default=True,
        help="Seconds a session lives without a refresh.")
@click.pass_obj
def gateway(state: CliState, listen: str, servers: tuple[str, ...], dns: str | None, zone: str, identity: str,
            cert: Path | None, key: Path | None, public_url: str, github_client_id: str, github_client_secret: str,
            github_url: str, github_api_url: str, access_ttl: int, refresh_ttl: int) -> None:
    """Run the gateway: GitHub login, and every API route proxied for the logged-in user."""
    from persys.gateway.config import GatewayConfig
    from persys.gateway.server import Gateway
    from persys.runtime.supervisor import run_process

    if bool(cert) != bool(key):
        raise click.UsageError("--cert and --key go together")
    plog.configure()
    tracing.setup("persys-gateway")
    fallback = servers or (load(state.home).server,)
    config = GatewayConfig(home=state.home, servers=tuple(fallback), listen=parse_listen(listen), dns=dns, zone=zone,
                           identity=identity, cert=cert, key=key, public_url=public_url,
                           github=github_settings(github_client_id, github_client_secret, github_url, github_api_url),
                           access_ttl=access_ttl, refresh_ttl=refresh_ttl)
    component = Gateway(config)
    asyncio.run(run_process("gateway", component.start))
