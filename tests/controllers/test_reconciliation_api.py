"""The reconciliation routes and their CLI commands, against a real API server and etcd."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_support import workload

from persys.api.reconciliation import add_routes
from persys.controllers.conditions import RECONCILE_REQUESTED
from persys.controllers.reconciler import TRIGGER_KEY
from persys.resources import REGISTRY
from persys.security.paths import HomePaths
from persys.store import Etcd, ObjectStore
from persys.store.keys import STATS_RECONCILER
from persys.store.server import EtcdServer
from tests.support.cluster import ApiThread, RunningApi, cli, pki_home, raw_request  # noqa: F401


@pytest.fixture
def api(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Iterator[RunningApi]:  # noqa: F811
    """An API server with the reconciliation routes, over the session etcd."""
    thread = ApiThread(etcd_server.url, pki_home.home, extra_routes=[add_routes]).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home")
    finally:
        thread.stop()


async def test_routes(api: RunningApi, store: ObjectStore, etcd: Etcd) -> None:
    created = await store.create(workload("web"))
    status, body, _ = await raw_request(api, "GET", "/reconciliation/stats")
    assert status == 200 and json.loads(body)["totalProcessed"] == 0
    await etcd.put(STATS_RECONCILER, json.dumps({"totalProcessed": 7, "errors": 1, "successRate": 0.857}).encode())
    status, body, _ = await raw_request(api, "GET", "/reconciliation/stats")
    assert json.loads(body)["totalProcessed"] == 7 and json.loads(body)["errors"] == 1

    status, body, _ = await raw_request(api, "POST", "/reconciliation/trigger")
    assert status == 202 and await etcd.get(TRIGGER_KEY) is not None

    status, body, _ = await raw_request(api, "POST", "/workloads/web/reconcile")
    assert status == 202 and json.loads(body)["uid"] == created.metadata.uid
    assert RECONCILE_REQUESTED in (await store.get("Workload", "default", "web")).metadata.annotations
    status, _, _ = await raw_request(api, "POST", f"/workloads/{created.metadata.uid}/reconcile")
    assert status == 202
    status, body, _ = await raw_request(api, "POST", "/workloads/nope/reconcile")
    assert status == 404 and json.loads(body)["reason"] == "NotFound"
    status, _, _ = await raw_request(api, "POST", "/workloads/web/reconcile?namespace=other")
    assert status == 404

    status, body, _ = await raw_request(api, "PUT", "/workloads/web/desired-state",
                                        body=json.dumps({"desiredState": "Stopped"}).encode())
    assert status == 200 and json.loads(body)["spec"]["desiredState"] == "Stopped"
    stored = await store.get("Workload", "default", "web")
    assert stored.spec["desiredState"] == "Stopped" and stored.metadata.generation == 2
    status, body, _ = await raw_request(api, "PUT", "/workloads/web/desired-state",
                                        body=json.dumps({"desiredState": "Paused"}).encode())
    error = json.loads(body)
    assert status == 422 and error["details"]["causes"] == [
        {"field": "desiredState", "message": "must be one of Running, Stopped"}]
    status, _, _ = await raw_request(api, "PUT", "/workloads/web/desired-state", body=b"{not json")
    assert status == 400
    status, _, _ = await raw_request(api, "POST", "/reconciliation/trigger", identity="node-n1")
    assert status == 403  # agents may not drive reconciliation


def test_cli_commands(api: RunningApi) -> None:
    async def seed() -> None:
        etcd = Etcd(api.thread.etcd_url)
        try:
            await ObjectStore(etcd, REGISTRY).create(workload("web"))
            await etcd.put(STATS_RECONCILER, json.dumps({
                "totalProcessed": 3, "needingReconciliation": 1, "errors": 0, "successRate": 1.0,
                "actions": {"create": 1, "none": 2},
                "lastPass": {"start": "2026-01-01T00:00:00.000000Z", "end": "2026-01-01T00:00:01.000000Z",
                             "durationSeconds": 1.0}}).encode())
        finally:
            await etcd.close()

    asyncio.run(seed())
    code, out, err = cli(api.home, "stats")
    assert code == 0, err
    assert "Total processed" in out and "3" in out and "100.0%" in out and "create" in out
    code, out, _ = cli(api.home, "stats", "-o", "json")
    assert json.loads(out)["actions"] == {"create": 1, "none": 2}
    assert cli(api.home, "stop", "web")[1].strip() == "workload/web desiredState Stopped"
    assert cli(api.home, "start", "web")[1].strip() == "workload/web desiredState Running"
    assert cli(api.home, "reconcile", "web")[1].strip() == "workload/web reconcile requested"
    assert cli(api.home, "reconcile")[1].strip() == "full reconciliation pass triggered"
    code, _, err = cli(api.home, "stop", "missing")
    assert code == 1 and "NotFound" in err
