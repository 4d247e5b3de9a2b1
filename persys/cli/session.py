"""What client commands share: option naming (``PERSYS_<FLAG>``), the API session, error output.

``call`` opens one trace span per command and sends its ``traceparent`` with every request,
so a CLI command and the API work it causes form one trace. When a DNS server is known
(``--dns``, ``PERSYS_DNS`` or ``dns:`` in config.yaml) and no ``--server`` was given, it finds the
live API servers by SRV and tries them in order, the configured server last.

Kinds are looked up with ``lookup_kind``: a built-in kind at once, any other (a custom kind, by
kind, plural, short name or ``kind.group``) from the server's discovery route, once per command.
The command's client shares that registry (``command_registry``), so it knows what was found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from persys.cli.config import ClientConfig, load, save_login
from persys.client import ApiClient
from persys.client.discovery import pick_api_server
from persys.client.gateway import GatewayClient, expires_soon
from persys.errors import NotFound, PersysError
from persys.observability import logging as plog
from persys.observability import tracing
from persys.renewal import CertificateRenewer
from persys.resources import Kind, Registry
from persys.resources.kinds import default_registry

DNS_META = "persys.dns"  # where --dns leaves its value in ctx.meta (commands need no parameter for it)
KINDS_META = "persys.kinds"  # the command's registry in ctx.meta (see command_registry)

log = plog.get_logger("cli")

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


def _remember_dns(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.meta[DNS_META] = value
    return value


def client_options(f: F) -> F:
    """``--server``, ``--config`` and ``--dns``: override the server URL, the config file, the DNS server."""
    f = option("--dns", default=None, expose_value=False, callback=_remember_dns,
               help="DNS server HOST:PORT to discover API servers from (overrides config.yaml).")(f)
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


async def api_server(settings: ClientConfig, explicit: bool) -> str:
    """The URL to talk to: ``settings.server`` when given explicitly or when no DNS server is known,
    else the first discovered API server that accepts connections (``settings.server`` as the fallback)."""
    if explicit or not settings.dns:
        log.debug("discovery.skipped", server=settings.server,
                  reason="--server given" if explicit else "no DNS server configured")
        return settings.server
    url = await pick_api_server(settings.server, settings.dns, settings.zone)
    log.debug("discovery.using", server=url, dns=settings.dns, zone=settings.zone,
              discovered=url != settings.server)
    return url


def command_registry(ctx: click.Context) -> Registry:
    """The kinds this command knows: the built-in ones, plus those the server's discovery told it."""
    registry = ctx.meta.get(KINDS_META)
    if not isinstance(registry, Registry):
        registry = ctx.meta[KINDS_META] = default_registry()
    return registry


def lookup_kind(name: str, ctx: click.Context | None = None) -> Kind:
    """The kind a user typed: a built-in one at once; any other asks the server's discovery (before
    the command's own calls, with its ``--server``/``--config``). NotFound lists the kinds known."""
    ctx = ctx or click.get_current_context()
    try:
        return command_registry(ctx).get(name)
    except NotFound:
        pass
    server, config_file = ctx.params.get("server"), ctx.params.get("config_file")
    return call(ctx, lambda client: client.resolve(name), server=server, config_file=config_file)


def call(ctx: click.Context, fn: Callable[[ApiClient], Awaitable[T]], *, server: str | None,
         config_file: Path | None) -> T:
    """Run ``fn`` with an API client built from the config, inside the command's trace span."""
    plog.configure(default="warning")
    state = ctx.find_object(CliState)
    home = state.home if state else Path.home() / ".persys"
    settings = load(home, config_file, server, dns=ctx.meta.get(DNS_META))
    command = ctx.command_path.removeprefix(ctx.find_root().info_name or "").strip() or "persys"
    with tracing.tracer("persys.cli").start_as_current_span(f"persys {command}"):
        headers = dict(tracing.inject({}))

        async def run() -> T:
            if settings.token and server is None:  # logged in: through the gateway, as that user
                headers["Authorization"] = f"Bearer {await fresh_token(settings)}"
                async with ApiClient(settings.gateway, ca=settings.ca, headers=headers,
                                     registry=command_registry(ctx)) as client:
                    return await fn(client)
            url = await api_server(settings, explicit=server is not None)
            await renew_if_due(settings, url)
            async with ApiClient(url, ca=settings.ca, cert=settings.cert, key=settings.key,
                                 headers=headers, registry=command_registry(ctx)) as client:
                return await fn(client)

        return asyncio.run(run())


async def renew_if_due(settings: ClientConfig, url: str) -> None:
    """Renew the CLI's certificate first when 2/3 of its lifetime has passed, as a component renews its own
    (``persys.renewal``): a CLI used now and then never finds its certificate expired. A failed renewal is
    a warning; the command goes on with the certificate it has."""
    if settings.cert is None or settings.key is None or settings.ca is None or not settings.cert.exists():
        return
    renewer = CertificateRenewer(settings.cert.stem, settings.cert, settings.key, settings.ca, lambda: url)
    if not renewer.due():
        return
    try:
        await renewer.renew()
    except PersysError as e:
        click.echo(f"warning: could not renew {settings.cert}: {e.message}", err=True)


async def fresh_token(settings: ClientConfig) -> str:
    """The login's access token, refreshed at the gateway (and saved) when it is about to expire."""
    if not expires_soon(settings.token):
        return settings.token
    tokens = await GatewayClient(settings.gateway, ca=settings.ca).refresh(settings.refresh_token)
    if settings.file is not None:
        save_login(settings.file, settings.gateway, tokens["access_token"], tokens["refresh_token"], tokens["user"])
    return str(tokens["access_token"])
