"""What client commands share: option naming (``PERSYS_<FLAG>``), the API session, error output.

``call`` opens one trace span per command and sends its ``traceparent`` with every request,
so a CLI command and the API work it causes form one trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from persys.cli.config import load
from persys.client import ApiClient
from persys.errors import PersysError
from persys.observability import tracing

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CliState:
    """The group's options, passed to every command as ``ctx.obj``."""

    home: Path


def option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option also read from ``PERSYS_<LONG_FLAG>`` (flags win over the environment)."""
    long = next((d for d in decls if d.startswith("--")), None)
    if long is not None and "envvar" not in kwargs:
        kwargs["envvar"] = "PERSYS_" + long[2:].split("/")[0].upper().replace("-", "_")
        kwargs.setdefault("show_envvar", True)
    return click.option(*decls, **kwargs)


def client_options(f: F) -> F:
    """``--server`` and ``--config``: override the server URL and the file of ``config.yaml``."""
    f = option("--server", default=None, help="API server URL (overrides config.yaml).")(f)
    return option("--config", "config_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
                  help="CLI config file (default $PERSYS_HOME/config.yaml).")(f)


def report(error: PersysError) -> None:
    """Print the server's reason, message and each field cause to stderr."""
    message = error.message
    joined = "; ".join(f"{c.field}: {c.message}" for c in error.causes)
    if joined and message.endswith(joined):  # the causes follow, one per line
        message = message[: -len(joined)].rstrip(" :;")
    click.echo(f"Error ({error.reason}): {message}", err=True)
    for cause in error.causes:
        click.echo(f"  {cause.field or '<object>'}: {cause.message}", err=True)


def call(ctx: click.Context, fn: Callable[[ApiClient], Awaitable[T]], *, server: str | None,
         config_file: Path | None) -> T:
    """Run ``fn`` with an API client built from the config, inside the command's trace span."""
    state = ctx.find_object(CliState)
    home = state.home if state else Path.home() / ".persys"
    settings = load(home, config_file, server)
    command = ctx.command_path.removeprefix(ctx.find_root().info_name or "").strip() or "persys"
    with tracing.tracer("persys.cli").start_as_current_span(f"persys {command}"):
        headers = dict(tracing.inject({}))

        async def run() -> T:
            async with ApiClient(settings.server, ca=settings.ca, cert=settings.cert, key=settings.key,
                                 headers=headers) as client:
                return await fn(client)

        return asyncio.run(run())
