"""Watches through the API: order, resume from a revision, bookmarks, 410 after compaction."""

from __future__ import annotations

import asyncio
import json

import pytest

from persys.client import ApiClient
from persys.errors import Gone
from persys.store import Etcd
from tests.support.cluster import RunningApi, raw_request
from tests.support.workloads import manifest


async def collect(client: ApiClient, revision: str, count: int, *, bookmarks: bool = False) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    async for item in client.watch("workloads", resource_version=revision):
        if item.type == "BOOKMARK" and not bookmarks:
            continue
        seen.append((item.type, item.object.metadata.name if item.object else item.resource_version))
        if len(seen) >= count:
            break
    return seen


async def test_watch_sees_changes_in_order_and_resumes(api: RunningApi) -> None:
    async with api.client() as client:
        _, revision = await client.list("workloads")
        watcher = asyncio.create_task(collect(client, revision, 3))
        await asyncio.sleep(0.3)
        created, _ = await client.apply_raw(manifest("a"))
        await client.apply_raw(manifest("a", image="other:1"))
        await client.delete("workload", "a")
        seen = await asyncio.wait_for(watcher, 10)
        assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
        resumed = await asyncio.wait_for(collect(client, created.metadata.resourceVersion, 2), 10)
        assert resumed == [("MODIFIED", "a"), ("DELETED", "a")]


async def test_watch_without_revision_starts_now_and_bookmarks(api: RunningApi) -> None:
    async with api.client() as client:
        await client.apply_raw(manifest("old"))
        watcher = asyncio.create_task(collect(client, "", 2, bookmarks=True))
        await asyncio.sleep(0.3)
        created, _ = await client.apply_raw(manifest("new"))
        seen = await asyncio.wait_for(watcher, 10)
        # the bookmark (after 1 s of silence in tests) carries the last delivered revision
        assert seen == [("ADDED", "new"), ("BOOKMARK", created.metadata.resourceVersion)]


async def test_watch_of_compacted_revision_is_gone(api: RunningApi, etcd: Etcd) -> None:
    async with api.client() as client:
        first, _ = await client.apply_raw(manifest("a"))
        await client.apply_raw(manifest("a", image="other:1"))
        await etcd.compact(await etcd.revision())
        with pytest.raises(Gone) as caught:
            await collect(client, str(int(first.metadata.resourceVersion) - 1), 1)
        assert caught.value.code == 410
        path = "/apis/persys.dev/v1/namespaces/default/workloads?watch=true&resourceVersion=1"
        status, body, headers = await raw_request(api, "GET", path)
        assert status == 410 and json.loads(body)["reason"] == "Expired"
        assert headers["Content-Type"].startswith("application/json")


async def test_watch_all_namespaces_with_selector(api: RunningApi) -> None:
    async with api.client() as client:
        _, revision = await client.list("workloads", None)
        seen: list[str] = []

        async def follow() -> None:
            async for item in client.watch("workloads", None, resource_version=revision, selector="app=web"):
                if item.object is not None:
                    seen.append(f"{item.object.metadata.namespace}/{item.object.metadata.name}")
                    return

        watcher = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        await client.apply_raw(manifest("db", namespace="team"))
        await client.apply_raw(manifest("web", namespace="team", labels={"app": "web"}))
        await asyncio.wait_for(watcher, 10)
        assert seen == ["team/web"]
