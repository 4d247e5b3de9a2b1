"""``persys pki init`` and ``persys pki issue``: the cluster CA and the certificates it signs; ``persys pki
hmac-keys`` and ``rotate-hmac``: the agents' HMAC keyring, through the API (admins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from persys.api.hmackeys import PATH as HMAC_KEYRING_PATH
from persys.cli.printing import click_echo
from persys.cli.session import CliState, call, client_options, option
from persys.cli.token import parse_duration
from persys.client import ApiClient
from persys.runtime.clock import to_iso
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
@option("--role", required=True, type=click.Choice([*certs.ROLES, "servers"]),
        help="The role written as O=persys:<role> (servers: the API server's own certificate).")
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


ROTATION_STEPS = {
    "start": "a new CA joined the bundle in {ca}: it is trusted, not signing yet. Every component follows the "
             "bundle within a minute (GET /cluster-info); when they all have, run `persys pki rotate-ca switch`.",
    "switch": "the new CA signs from now on; the old one stays trusted. Each component gets a certificate of the "
              "new CA at its next renewal (2/3 of its lifetime); when all have, run `persys pki rotate-ca finish`.",
    "finish": "only the new CA is trusted in {ca}: restart the components, so that none trusts the old one.",
}


@pki.command("rotate-ca")
@click.argument("step", type=click.Choice(["start", "switch", "finish", "status"]))
@click.pass_obj
def rotate_ca(state: CliState, step: str) -> None:
    """Replace the cluster CA in three steps: start (trust a new CA), switch (sign with it), finish (drop the old).

    Run them on the host holding the CA key ($PERSYS_HOME/pki), in order; `status` says which step is next."""
    paths = HomePaths(state.home)
    if step == "status":
        now = certs.ca_rotation_step(paths)
        following = {"none": "start", "started": "switch", "switched": "finish"}[now]
        click_echo(f"CA rotation: {now}; next step: persys pki rotate-ca {following}")
        return
    if step == "start":
        certs.rotate_ca_start(paths)
    elif step == "switch":
        certs.rotate_ca_switch(paths)
    else:
        certs.rotate_ca_finish(paths)
    click_echo(ROTATION_STEPS[step].format(ca=paths.ca_cert))


def _when(value: Any) -> str:
    return to_iso(float(value)) if isinstance(value, int | float) and value > 0 else "-"


def _keys_table(keyring: Any) -> str:
    """The keys an ``/hmac-keyring`` answer lists, one aligned row each (times in UTC)."""
    rows = [("KEY", "STATE", "SIGNS FROM", "EXPIRES")] + [
        (str(k.get("id")), str(k.get("state")), _when(k.get("signFrom")), _when(k.get("expires")))
        for k in (keyring.get("keys") or [] if isinstance(keyring, dict) else [])]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@pki.command("hmac-keys")
@client_options
@click.pass_context
def hmac_keys(ctx: click.Context, server: str | None, config_file: Path | None) -> None:
    """List the agents' HMAC keys (no secrets): which signs now, which is next, when each expires (admins)."""
    async def run(client: ApiClient) -> Any:
        return (await client.request("GET", HMAC_KEYRING_PATH))[1]

    click_echo(_keys_table(call(ctx, run, server=server, config_file=config_file)))


@pki.command("rotate-hmac")
@option("--overlap", default="10m", show_default=True,
        help="The overlap window (90s, 10m, 1h): agents accept the new key at once, signers switch to it after "
             "this long, the old key expires after twice this long. Keep it well above the agents' --hmac-refresh.")
@client_options
@click.pass_context
def rotate_hmac(ctx: click.Context, overlap: str, server: str | None, config_file: Path | None) -> None:
    """Add a new HMAC key for agent requests and retire the old one after the overlap window (admins)."""
    seconds = parse_duration(overlap, "--overlap")

    async def run(client: ApiClient) -> Any:
        return (await client.request("POST", HMAC_KEYRING_PATH + "/rotate", body={"overlapSeconds": seconds}))[1]

    answer = call(ctx, run, server=server, config_file=config_file)
    new = (answer.get("keys") or [{}])[-1] if isinstance(answer, dict) else {}
    click_echo(f"HMAC key {new.get('id')} added: agents accept it now, signers switch to it at "
               f"{_when(new.get('signFrom'))}, the keys before it expire as listed")
    click_echo(_keys_table(answer))
