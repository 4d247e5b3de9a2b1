"""The ``persys`` entry point: the command group, with every command module listed once below.

Commands load lazily (``persys get`` never imports the API server or Docker client), and a
``PersysError`` from any command prints its reason and field causes and exits 1.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from persys.cli.session import CliState, option, report
from persys.errors import PersysError
from persys.security.paths import default_home

# ---- Commands: name -> "module:attribute". Each component adds its own line here. ----
COMMANDS: dict[str, str] = {
    "pki": "persys.cli.pki:pki",
    "server": "persys.cli.server:server",
    "apply": "persys.cli.apply:apply",
    "get": "persys.cli.get:get",
    "describe": "persys.cli.describe:describe",
    "delete": "persys.cli.delete:delete",
    "explain": "persys.cli.explain:explain",
    "agent": "persys.cli.agent:agent",
    "up": "persys.cli.up:up",
    "logs": "persys.cli.logs:logs",
    "dns": "persys.cli.dns:dns",
    "controllers": "persys.cli.controllers:controllers",
    "stats": "persys.cli.reconcile:stats",
    "reconcile": "persys.cli.reconcile:reconcile",
    "stop": "persys.cli.reconcile:stop",
    "start": "persys.cli.reconcile:start",
    "operator": "persys.cli.operator:operator",
    "auth": "persys.cli.auth:auth",
    "gateway": "persys.cli.gateway:gateway",
    "login": "persys.cli.login:login",
    "logout": "persys.cli.login:logout",
    "sessions": "persys.cli.login:sessions",
    "audit": "persys.cli.audit:audit",
    "token": "persys.cli.token:token",
    "certificate": "persys.cli.certificate:certificate",
    "diff": "persys.cli.diff:diff",
    "scale": "persys.cli.rollout:scale",
    "rollout": "persys.cli.rollout:rollout",
}
# ---- end of commands ----


def _set_home(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.obj = CliState(home=value.absolute())


def _accept_home(command: click.Command) -> None:
    """Let ``--home`` also follow the command name (``persys up --home DIR``), as DESIGN.md promises."""
    if not any("--home" in param.opts for param in command.params):
        command.params.append(click.Option(
            ["--home"], type=click.Path(file_okay=False, path_type=Path), default=None, expose_value=False,
            is_eager=True, callback=_set_home, help="Cluster home (overrides persys --home and PERSYS_HOME)."))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_home(sub)


class LazyGroup(click.Group):
    """A group importing each command's module only when that command runs (or help lists it)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module_name, _, attribute = COMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        _accept_home(command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PersysError as e:
            report(e)
            ctx.exit(1)


@click.group(name="persys", cls=LazyGroup,
             context_settings={"auto_envvar_prefix": "PERSYS", "help_option_names": ["-h", "--help"]})
@option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Cluster home (PKI, etcd data, config.yaml); default ~/.persys.")
@click.version_option(package_name="persys")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Persys: a Kubernetes-style orchestrator on asyncio."""
    ctx.obj = CliState(home=(home or default_home()).absolute())


if __name__ == "__main__":
    main()
