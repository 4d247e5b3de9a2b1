"""``persys server``: the API server (plain and mTLS listeners) over an etcd cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from persys.cli.audit import audit_options, audit_settings
from persys.cli.etcdtls import etcd_tls, etcd_tls_options
from persys.cli.session import CliState, option
from persys.observability import logging as plog
from persys.observability import tracing


@click.command()
@option("--etcd", default="http://127.0.0.1:2379", show_default=True, help="etcd endpoints, comma-separated.")
@option("--listen", default="127.0.0.1:7070", show_default=True,
        help="Plain listener (healthz, readyz, version, metrics, openapi.json).")
@option("--secure-listen", default="127.0.0.1:7443", show_default=True, help="mTLS listener (everything).")
@option("--bookmark-interval", type=float, default=5.0, show_default=True,
        help="Seconds of watch silence before a BOOKMARK line.")
@option("--zone", default="persys.local", show_default=True,
        help="Register as SRV _persys-api._tcp.<zone> for discovery ('' to not register).")
@option("--advertise", default="", help="Host registered in DNS (default: the --secure-listen host).")
@audit_options
@etcd_tls_options
@click.pass_obj
def server(state: CliState, /, etcd: str, listen: str, secure_listen: str, bookmark_interval: float, zone: str,
           advertise: str, etcd_ca: Any, etcd_cert: Any, etcd_key: Any, **audit: Any) -> None:
    """Run the API server; certificates come from $PERSYS_HOME/pki (persys pki init)."""
    from persys.api.server import serve

    settings = audit_settings(state.home, **audit)  # a bad policy stops it here, before it listens
    tls = etcd_tls(etcd_ca, etcd_cert, etcd_key)
    plog.configure()
    tracing.setup("persys-api")
    asyncio.run(serve(etcd, state.home, listen, secure_listen, bookmark_interval=bookmark_interval, zone=zone,
                      advertise=advertise, audit=settings, etcd_tls=tls))
