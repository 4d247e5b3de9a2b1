"""``persys pki init`` and ``persys pki issue``: the cluster CA and the certificates it signs."""

from __future__ import annotations

import click

from persys.cli.printing import click_echo
from persys.cli.session import CliState, option
from persys.security import pki as certs
from persys.security.paths import HomePaths, read_cluster_id


@click.group()
def pki() -> None:
    """Cluster certificates under $PERSYS_HOME/pki."""


@pki.command()
@option("--api-server", default=certs.DEFAULT_SERVER, show_default=True,
        help="Server URL written to config.yaml.")
@option("--certificate-seconds", type=click.FloatRange(min=10), default=certs.CERT_SECONDS, show_default=True,
        help="Lifetime of the server, admin and controller certificates (the CA's is ten years).")
@click.pass_obj
def init(state: CliState, api_server: str, certificate_seconds: float) -> None:
    """Create the CA, server/admin/controller certificates, the agent HMAC secret, the cluster id and config.yaml.

    Existing files are kept."""
    paths = certs.init(state.home, server=api_server, lifetime=certificate_seconds)
    click_echo(f"PKI ready in {paths.pki} (cluster {read_cluster_id(paths)}); CLI config {paths.config}")


@pki.command()
@option("--identity", required=True, help="Certificate name: admin, controller, node-<name>, …")
@option("--role", required=True, type=click.Choice(certs.ROLES), help="The role written as O=persys:<role>.")
@option("--san", "sans", multiple=True, help="A DNS name or IP the certificate also serves TLS for.")
@option("--force", is_flag=True, help="Replace an existing certificate.")
@option("--certificate-seconds", type=click.FloatRange(min=10), default=certs.CERT_SECONDS, show_default=True,
        help="Lifetime of the certificate.")
@click.pass_obj
def issue(state: CliState, identity: str, role: str, sans: tuple[str, ...], force: bool,
          certificate_seconds: float) -> None:
    """Issue a client (or, with --san, server) certificate signed by the cluster CA."""
    cert, key = certs.issue(HomePaths(state.home), identity, role, sans=sans, force=force,
                            lifetime=certificate_seconds)
    click_echo(f"certificate {cert}\nkey         {key}")
