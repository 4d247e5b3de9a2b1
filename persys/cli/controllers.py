"""``persys controllers``: the scheduler, reconciler and monitor, leader-elected through etcd.

Beside them runs the Deployment controller, an operator that talks to the API (``--server``, by
default the one in config.yaml) under the controllers' certificate; ``--no-deployments`` leaves it out.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from persys.cli.config import load
from persys.cli.etcdtls import etcd_tls, etcd_tls_options
from persys.cli.session import CliState, option
from persys.observability import logging as plog
from persys.observability import tracing


@click.command()
@option("--etcd", default="http://127.0.0.1:2379", show_default=True, help="etcd endpoints, comma-separated.")
@option("--listen", default="127.0.0.1:7072", show_default=True, help="Metrics and health listener.")
@option("--identity", default=None, help="Leader-election identity (default: host-pid).")
@option("--zone", default="persys.local", show_default=True, help="DNS zone of the dns-registrar.")
@option("--settings", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
        help="YAML file of controller settings (grace_seconds, full_pass_seconds, lease_ttl, …).")
@option("--server", default=None, help="API server the Deployment controller talks to (default: config.yaml's).")
@option("--deployments/--no-deployments", default=True, show_default=True,
        help="Run the Deployment controller (an operator on the API, leader-elected on its own Lease).")
@etcd_tls_options
@click.pass_obj
def controllers(state: CliState, etcd: str, listen: str, identity: str | None, zone: str,
                settings: Path | None, server: str | None, deployments: bool, etcd_ca: Path | None,
                etcd_cert: Path | None, etcd_key: Path | None) -> None:
    """Run the controllers; the agents' HMAC secret comes from $PERSYS_HOME/pki (persys pki init)."""
    import yaml

    from persys.controllers import ControllersConfig, build_manager
    from persys.controllers.dnsregistrar import dns_registrar

    tls = etcd_tls(etcd_ca, etcd_cert, etcd_key)
    plog.configure()
    tracing.setup("persys-controllers")
    config = ControllersConfig.from_dict(yaml.safe_load(settings.read_text()) or {}) if settings else None

    api = load(state.home, None, server).server if deployments else ""

    async def main() -> None:
        manager = build_manager(etcd, home=state.home, listen=listen, config=config, identity=identity,
                                extra=[dns_registrar(zone)], etcd_tls=tls)
        stop = asyncio.Event()

        def halt() -> None:
            manager.stop()
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, halt)
        async with asyncio.TaskGroup() as group:
            group.create_task(manager.run(), name="controllers")
            if deployments:
                from persys.deployments import runner
                group.create_task(runner(api, state.home).run_until_stopped(stop), name="deployments")

    asyncio.run(main())
