"""``persys operator run FILE.py|module``: an operator as its own process, talking to the API only.

It presents a certificate of role ``operators`` (``persys pki issue --identity NAME --role
operators``; by default the operator's own name, from ``$PERSYS_HOME/pki``), elects its leader
on a Lease through the API, serves ``/metrics`` and ``/healthz`` on ``--listen`` and stops on
SIGINT or SIGTERM, giving its Lease up so that a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import click

from persys.cli.config import load
from persys.cli.session import DNS_META, CliState, api_server, client_options, option
from persys.errors import BadRequest
from persys.observability import logging as plog
from persys.observability import tracing
from persys.security.paths import HomePaths

FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group()
def operator() -> None:
    """Operators written with persys.operator."""


@operator.command()
@click.argument("target")
@client_options
@option("--identity", default=None, help="Certificate name in $PERSYS_HOME/pki (role operators); default: the "
                                          "operator's name.")
@option("--cert", type=FILE, default=None, help="Client certificate (overrides --identity).")
@option("--key", type=FILE, default=None, help="Its private key.")
@option("--listen", default="127.0.0.1:7074", show_default=True, help="Metrics and health listener.")
@option("--namespace", default=None, help="Watch only this namespace (default: all).")
@option("--lease-namespace", default="default", show_default=True, help="Namespace of the leader Lease.")
@option("--lease-ttl", default=15, show_default=True, type=click.IntRange(2, 3600),
        help="Seconds a standby waits for a silent leader before it takes over.")
@click.pass_context
def run(ctx: click.Context, target: str, server: str | None, config_file: Path | None, identity: str | None,
        cert: Path | None, key: Path | None, listen: str, namespace: str | None, lease_namespace: str,
        lease_ttl: int) -> None:
    """Run the operator in TARGET (a file such as backup.py, or a module, either with :NAME) until stopped."""
    from persys.operator import Connection, OperatorRunner
    from persys.operator.loading import load_operator
    from persys.runtime.supervisor import stop_signals

    plog.configure()
    state = ctx.find_object(CliState)
    home = HomePaths(state.home if state else Path.home() / ".persys")
    op = load_operator(target)
    tracing.setup(f"persys-operator-{op.name}")
    settings = load(home.home, config_file, server, dns=ctx.meta.get(DNS_META))
    who = identity or op.name
    cert, key = cert or home.cert(who), key or home.key(who)
    if not cert.exists() or not key.exists():
        raise BadRequest(f"no certificate for {who!r} in {home.pki}: run `persys pki issue --identity {who} "
                         "--role operators`, or pass --cert and --key")
    host, _, port = listen.rpartition(":")

    async def main() -> None:
        url = await api_server(settings, explicit=server is not None)
        runner = OperatorRunner(op, Connection(url, ca=settings.ca, cert=cert, key=key),
                                identity=f"{who}-{socket.gethostname()}-{os.getpid()}", namespace=namespace,
                                lease_namespace=lease_namespace, lease_ttl=lease_ttl, listen=(host, int(port)))
        with stop_signals() as stop:
            await runner.run_until_stopped(stop)

    asyncio.run(main())
