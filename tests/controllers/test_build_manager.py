"""``build_manager`` and ``persys controllers``: every controller under one leader-elected manager."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from controller_support import SECRET, eventually

from persys.cli.main import main
from persys.controllers import ControllersConfig, build_manager
from persys.controllers.dnsregistrar import dns_registrar
from persys.resources import REGISTRY
from persys.security import pki
from persys.store.server import EtcdServer, free_port


async def test_all_controllers_run_and_report_health(etcd_server: EtcdServer, tmp_path: Path) -> None:
    port = free_port()
    pki.ensure_ca(tmp_path)  # the csr-signer runs where the CA's key is
    manager = build_manager(etcd_server.url, listen=f"127.0.0.1:{port}", hmac_secret=SECRET, identity="smoke",
                            home=tmp_path,
                            config=ControllersConfig(lease_ttl=2), extra=[dns_registrar("persys.local")])
    task = asyncio.create_task(manager.run())
    try:
        await eventually(lambda: _leading(manager), what="leadership")
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            health = await resp.json()
        assert resp.status == 200 and health["leader"] is True
        assert health["controllers"] == ["scheduler", "reconciler", "status", "monitor", "gc", "git-poller",
                                         "csr-signer", "token-cleaner", "dns-registrar"]
        # gc watches every kind but those that expire on a lease (Events, CSRs), which the csr-signer watches
        assert {i["kind"] for i in health["informers"]} == \
            {k.kind for k in REGISTRY.all() if k.lease_ttl is None} | {"CertificateSigningRequest"}
    finally:
        manager.stop()
        await asyncio.wait_for(task, 10)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown controller settings: grace"):
        ControllersConfig.from_dict({"grace": 1})
    with pytest.raises(ValueError, match="unknown controllers: nope"):
        build_manager("http://127.0.0.1:1", hmac_secret=b"x", listen=None, controllers=["nope"])


def test_cli_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["controllers", "--help"])
    assert result.exit_code == 0 and "--etcd" in result.output and "--listen" in result.output
    for command in ("stats", "reconcile", "stop", "start"):
        assert CliRunner().invoke(main, [command, "--help"]).exit_code == 0


async def _leading(manager: object) -> bool:
    return bool(getattr(manager, "is_leader", False))
