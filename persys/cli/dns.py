"""``persys dns``: the authoritative DNS server of the cluster zone, answered from SkyDNS records in etcd."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from persys.cli.etcdtls import etcd_tls, etcd_tls_options
from persys.cli.session import CliState, option
from persys.observability import logging as plog


@click.command()
@option("--etcd", default="http://127.0.0.1:2379", show_default=True, help="etcd endpoints, comma-separated.")
@option("--listen", default="127.0.0.1:5353", show_default=True, help="UDP and TCP address HOST:PORT.")
@option("--zone", default="persys.local", show_default=True, help="The zone answered; everything else is REFUSED.")
@option("--metrics-listen", default="", help="HOST:PORT serving /metrics and /healthz; '' for none.")
@etcd_tls_options
@click.pass_obj
def dns(state: CliState, etcd: str, listen: str, zone: str, metrics_listen: str, etcd_ca: Any, etcd_cert: Any,
        etcd_key: Any) -> None:
    """Serve A, SRV and SOA records of the cluster zone over UDP and TCP."""
    from persys.dns.server import DnsServer, parse_listen
    from persys.runtime.supervisor import run_process
    from persys.store.etcd import Etcd

    tls = etcd_tls(etcd_ca, etcd_cert, etcd_key)
    plog.configure()
    try:
        host, port = parse_listen(listen)
    except ValueError as e:
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen") from e

    async def run() -> None:
        client = Etcd(etcd, tls=tls)
        server = DnsServer(client, zone, host, port,
                           metrics_listen=parse_listen(metrics_listen) if metrics_listen else None)
        try:
            await run_process("dns", lambda supervisor: server.start(supervisor, ready_timeout=None))
        finally:
            await client.close()

    try:
        asyncio.run(run())
    except OSError as e:
        raise click.ClickException(f"cannot listen on {listen}: {e}") from e
