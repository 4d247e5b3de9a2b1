"""``persys operator run``: a file or a module, run as its own process with leader election, /healthz, /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from persys.client import ApiClient
from persys.errors import BadRequest
from persys.operator.loading import load_operator
from persys.store.server import free_port
from tests.operator.harness import IDENTITY
from tests.support.cluster import RunningApi, cli
from tests.support.eventually import eventually
from tests.support.workloads import manifest

STAMPER = '''
from persys.operator import Operator

op = Operator("cli-stamper")


@op.reconcile("persys.dev/v1", "Workload", selector="op=cli")
async def reconcile(obj, ctx):
    ctx.log.info("reconciling")
    return {"message": "seen by the cli operator"}
'''


async def _health(port: int) -> dict[str, object] | None:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as resp:
            return dict(json.loads(await resp.text()))
    except aiohttp.ClientError:
        return None


async def test_run_a_file_as_its_own_process(api: RunningApi, tmp_path: Path) -> None:
    source = tmp_path / "stamper.py"
    source.write_text(STAMPER)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "persys.cli.main", "--home", str(api.pki.home), "operator", "run", str(source),
        "--server", api.secure_url, "--identity", IDENTITY, "--listen", f"127.0.0.1:{port}", "--lease-ttl", "3",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PERSYS_LOG_LEVEL": "warning"})
    try:
        health = await eventually(lambda: _leading(port), what="the operator leading", timeout=30)
        assert health["operator"] == "cli-stamper" and health["status"] == "ok"
        async with api.client() as admin:
            await admin.apply_raw(manifest("cli-1", labels={"op": "cli"}))
            await eventually(lambda: _message(admin, "cli-1"), what="the operator's status write")
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                assert "persys_reconcile_duration_seconds" in await resp.text()
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 20) == 0
            lease = await admin.get("Lease", "cli-stamper")
            assert lease.spec["holderIdentity"] == ""  # given up on the way out
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if process.stderr is not None:
            await process.stderr.read()


def test_a_module_is_loaded_by_name_and_a_missing_certificate_is_explained(
        api: RunningApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stamper_module.py").write_text(STAMPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_operator("stamper_module").name == "cli-stamper"
    assert load_operator("stamper_module:op").name == "cli-stamper"
    with pytest.raises(BadRequest, match="not an Operator"):
        load_operator("stamper_module:reconcile")
    with pytest.raises(BadRequest, match="no such file"):
        load_operator(str(tmp_path / "missing.py"))
    code, _, err = cli(api.pki.home, "operator", "run", "stamper_module", "--server", api.secure_url)
    assert code == 1
    assert "persys pki issue --identity cli-stamper --role operators" in err


async def _leading(port: int) -> dict[str, object] | None:
    health = await _health(port)
    return health if health is not None and health.get("leader") is True else None


async def _message(client: ApiClient, name: str) -> bool:
    obj = await client.get("Workload", name)
    return bool(obj.status.get("message") == "seen by the cli operator")
