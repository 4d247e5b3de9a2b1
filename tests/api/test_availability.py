"""etcd stopped under a running API: 503 "etcd unavailable" meanwhile, then service without a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from persys.errors import Unavailable
from persys.security.paths import HomePaths
from persys.store.server import EtcdServer
from tests.support.cluster import ApiThread, RunningApi, raw_request
from tests.support.workloads import manifest

WORKLOAD = manifest("web")


async def test_etcd_outage_answers_503_then_recovers(own_etcd: EtcdServer, pki_home: HomePaths,
                                                     tmp_path: Path) -> None:
    await own_etcd.start()
    thread = ApiThread(own_etcd.url, pki_home.home).start()
    api = RunningApi(thread, pki_home, tmp_path / "home")
    try:
        async with api.client() as client:
            await client.apply_raw(WORKLOAD)
            own_etcd.stop()
            with pytest.raises(Unavailable) as caught:
                await client.get("workload", "web")
            assert caught.value.code == 503 and "etcd unavailable" in caught.value.message
            status, body, _ = await raw_request(api, "GET", "/readyz", plain=True)
            assert status == 503 and "etcd unavailable" in json.loads(body)["message"]
            status, _, _ = await raw_request(api, "GET", "/healthz", plain=True)
            assert status == 200
            await own_etcd.start()
            for _ in range(50):
                try:
                    assert (await client.get("workload", "web")).metadata.name == "web"
                    break
                except Unavailable:
                    await asyncio.sleep(0.2)
            else:
                pytest.fail("the API did not recover after etcd came back")
            status, _, _ = await raw_request(api, "GET", "/readyz", plain=True)
            assert status == 200
    finally:
        thread.stop()


async def test_watch_ends_with_an_error_line_when_etcd_goes_away(own_etcd: EtcdServer, pki_home: HomePaths,
                                                                 tmp_path: Path) -> None:
    await own_etcd.start()
    thread = ApiThread(own_etcd.url, pki_home.home).start()
    api = RunningApi(thread, pki_home, tmp_path / "home")
    try:
        async with api.client() as client:
            _, revision = await client.list("workloads")
            seen: list[str] = []
            added = asyncio.Event()

            async def follow() -> None:
                async for item in client.watch("workloads", resource_version=revision):
                    seen.append(item.type)
                    if item.type == "ADDED":
                        added.set()

            watcher = asyncio.create_task(follow())
            await asyncio.sleep(0.3)
            await client.apply_raw(WORKLOAD)  # its answer may come after the watch's event: etcd stops after both
            await asyncio.wait_for(added.wait(), 10)
            own_etcd.stop()
            with pytest.raises(Unavailable) as caught:
                await asyncio.wait_for(watcher, 30)
            assert seen[0] == "ADDED" and caught.value.code == 503
            assert caught.value.message.startswith("etcd watch")  # the server's ERROR line, not a broken socket
    finally:
        thread.stop()
