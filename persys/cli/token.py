"""``persys token create|list|delete``: the bootstrap tokens nodes join with (admins).

The token is made here, on the admin's machine, and only the hash of its secret is sent to the API
(``persys.security.bootstrap``): the cluster never sees the secret. ``create`` prints the token, and with
``--print-join-command`` the whole ``persys agent --join`` line for another host (server URL and CA hash
from the CLI's config). Deleting a token revokes it: it authenticates nothing afterwards, and CSRs it
made that are still pending are denied.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import click

from persys.cli.config import load
from persys.cli.printing import RowPrinter, click_echo
from persys.cli.session import CliState, call, client_options, option
from persys.client import ApiClient
from persys.resources import ObjectMeta, Resource
from persys.resources.certificates import BOOTSTRAP_TOKEN
from persys.runtime.clock import to_iso
from persys.security.bootstrap import join_command, new_token, secret_hash

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = 365 * 86400


def parse_duration(text: str, param: str) -> float:
    """``90s``, ``30m``, ``1h``, ``7d`` or plain seconds; BadParameter naming ``param`` for anything else."""
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise click.BadParameter(f"{text!r} is not a duration (90s, 30m, 1h, 7d)", param_hint=param)
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_ttl(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``7d`` or plain seconds; BadParameter outside (0, 365d]."""
    seconds = parse_duration(text, "--ttl")
    if not 0 < seconds <= MAX_TTL:
        raise click.BadParameter(f"{text!r} must be more than 0 and at most 365d", param_hint="--ttl")
    return seconds


@click.group()
def token() -> None:
    """Bootstrap tokens that let new nodes join (persys agent --join)."""


@token.command("create")
@option("--ttl", default="24h", show_default=True, help="How long the token is valid (90s, 30m, 1h, 7d).")
@option("--description", default="", help="What the token is for (shown by persys token list).")
@option("--node", "nodes", multiple=True, help="Node name the token may join as (repeatable; default: any).")
@option("--address", "addresses", multiple=True,
        help="IP address or network (10.0.0.0/8) the node's certificate may name besides loopback and the address "
             "its request comes from (repeatable).")
@option("--print-join-command", is_flag=True, help="Print the whole persys agent --join command.")
@client_options
@click.pass_context
def create(ctx: click.Context, ttl: str, description: str, nodes: tuple[str, ...], addresses: tuple[str, ...],
           print_join_command: bool, server: str | None, config_file: Path | None) -> None:
    """Create a token; print it (only the hash of its secret is stored)."""
    seconds = parse_ttl(ttl)
    token_id, secret = new_token()
    obj = Resource(kind=BOOTSTRAP_TOKEN.kind, metadata=ObjectMeta(name=token_id), spec={
        "secretHash": secret_hash(secret), "expires": to_iso(time.time() + seconds), "description": description,
        "roles": ["agents"], "nodeNames": list(nodes), "addresses": list(addresses)})

    async def run(client: ApiClient) -> str:
        await client.create(obj)
        return client.server

    url = call(ctx, run, server=server, config_file=config_file)
    full = f"{token_id}.{secret}"
    if not print_join_command:
        click_echo(full)
        return
    state = ctx.find_object(CliState)
    settings = load(state.home if state else Path.home() / ".persys", config_file, server)
    if settings.ca is None or not settings.ca.exists():
        raise click.UsageError("--print-join-command needs the cluster CA (ca: in config.yaml)")
    click_echo(join_command(url, full, settings.ca.read_bytes()))


@token.command("list")
@client_options
@click.pass_context
def list_tokens(ctx: click.Context, server: str | None, config_file: Path | None) -> None:
    """List bootstrap tokens (ids, expiry, what they allow; never their secrets)."""

    async def run(client: ApiClient) -> list[Resource]:
        return (await client.list(BOOTSTRAP_TOKEN.kind, None))[0]

    RowPrinter(BOOTSTRAP_TOKEN, False, False).print(call(ctx, run, server=server, config_file=config_file))


@token.command("delete")
@click.argument("ids", nargs=-1, required=True)
@client_options
@click.pass_context
def delete(ctx: click.Context, ids: tuple[str, ...], server: str | None, config_file: Path | None) -> None:
    """Delete (revoke) tokens by id (the part before the dot)."""

    async def run(client: ApiClient) -> None:
        for token_id in ids:
            await client.delete(BOOTSTRAP_TOKEN.kind, token_id.partition(".")[0])
            click_echo(f"bootstraptoken/{token_id.partition('.')[0]} deleted")

    call(ctx, run, server=server, config_file=config_file)
