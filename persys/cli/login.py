"""``persys login`` / ``persys logout``: GitHub login through a gateway, and the sessions it made.

After ``persys login`` every command goes through the gateway as the GitHub user (their
RoleBindings decide what they may do); ``persys logout`` revokes the session and commands use the
client certificate again. ``--server`` on a command still talks to that API server directly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from persys.cli.config import ClientConfig, forget_login, load, save_login
from persys.cli.printing import plain_line
from persys.cli.session import CliState, option
from persys.client.gateway import GatewayClient
from persys.errors import BadRequest
from persys.security.paths import HomePaths

DEFAULT_GATEWAY = "https://127.0.0.1:8443"


def _settings(state: CliState | None, config_file: Path | None) -> tuple[ClientConfig | None, Path]:
    home = state.home if state else Path.home() / ".persys"
    file = config_file or HomePaths(home).config
    return (load(home, config_file) if file.exists() else None), file


@click.command()
@option("--gateway", default=None, help=f"Gateway URL (default: the last one, else {DEFAULT_GATEWAY}).")
@option("--ca", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
        help="CA of the gateway's certificate (default: the cluster CA of the config).")
@option("--config", "config_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
        help="CLI config file (default $PERSYS_HOME/config.yaml).")
@click.pass_obj
def login(state: CliState | None, gateway: str | None, ca: Path | None, config_file: Path | None) -> None:
    """Log in with GitHub (device flow): open the URL shown, enter the code, and wait here."""
    settings, file = _settings(state, config_file)
    url = gateway or (settings.gateway if settings else "") or DEFAULT_GATEWAY
    client = GatewayClient(url, ca=ca or (settings.ca if settings else None))

    def show(start: dict[str, Any]) -> None:
        click.echo(f"Open {start['verification_uri']} and enter the code: {start['user_code']}")
        click.echo(f"Waiting for you to approve (the code expires in {int(start.get('expires_in', 900)) // 60} min)…")

    tokens = asyncio.run(client.device_login(show))
    save_login(file, url, tokens["access_token"], tokens["refresh_token"], tokens["user"])
    groups = ", ".join(tokens.get("groups") or []) or "none"
    click.echo(f"Logged in as {tokens['user']} (groups: {groups}); the token is in {file}")


@click.command()
@option("--config", "config_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
        help="CLI config file (default $PERSYS_HOME/config.yaml).")
@click.pass_obj
def logout(state: CliState | None, config_file: Path | None) -> None:
    """Revoke this login's session at the gateway and forget its tokens."""
    settings, file = _settings(state, config_file)
    if settings is None or not settings.token:
        raise BadRequest("not logged in (no token in the config)")
    client = GatewayClient(settings.gateway, ca=settings.ca)
    try:
        asyncio.run(client.logout(settings.token))
    finally:
        forget_login(file)
    click.echo("Logged out; commands use the client certificate again")


@click.group(invoke_without_command=True)
@option("--config", "config_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
        help="CLI config file (default $PERSYS_HOME/config.yaml).")
@click.pass_context
def sessions(ctx: click.Context, config_file: Path | None) -> None:
    """Your login sessions at the gateway (`persys sessions revoke ID` ends one)."""
    settings, _ = _settings(ctx.find_object(CliState), config_file)
    if settings is None or not settings.token:
        raise BadRequest("not logged in: run `persys login`")
    ctx.obj = settings
    if ctx.invoked_subcommand is None:
        body = asyncio.run(GatewayClient(settings.gateway, ca=settings.ca).sessions(settings.token))
        rows = [["ID", "USER", "VIA", "CREATED", "EXPIRES"]]
        rows += [[s["id"] + (" (this one)" if s["id"] == body.get("current") else ""), s["user"], s["via"],
                  s["created"], s["expires"]] for s in body.get("items", [])]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        click.echo("\n".join(plain_line(r, widths) for r in rows))


@sessions.command()
@click.argument("session_id")
@click.pass_obj
def revoke(settings: ClientConfig, session_id: str) -> None:
    """End the session SESSION_ID (its refresh and access tokens stop working)."""
    asyncio.run(GatewayClient(settings.gateway, ca=settings.ca).revoke(settings.token, session_id))
    click.echo(f"session {session_id} revoked")
