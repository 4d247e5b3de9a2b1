"""The API server's watch cache: one etcd watch per kind, history, slow watchers, and cleanup."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from persys.api.watchcache import QUEUE, KindCache
from persys.errors import Gone
from persys.resources import REGISTRY, Selector
from persys.store.etcd import RawEvent
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.workloads import workload

WORKLOAD = REGISTRY.get("Workload")


def raw(revision: int, name: str, kind: str = "PUT", version: int = 1, **labels: str) -> RawEvent:
    value = json.dumps({"kind": "Workload", "metadata": {"name": name, "namespace": "default", "labels": labels},
                        "spec": {}}).encode()
    return RawEvent(kind, f"/persys/registry/workloads/default/{name}", value, revision, version)


def ready_cache(start: int, history: int = 5) -> KindCache:
    cache = KindCache(None, WORKLOAD, history=history)  # type: ignore[arg-type]  # fed by hand: no etcd
    cache.start = cache.revision = start
    cache.ready.set()
    return cache


def names(sub: Any) -> list[tuple[str, str]]:
    out = []
    while not sub.queue.empty():
        item = sub.queue.get_nowait()
        data = json.loads(item.line)
        out.append((data["type"], data["object"]["metadata"]["name"]))
    return out


async def test_a_watch_resumes_from_the_history_and_filters() -> None:
    cache = ready_cache(10)
    for event in (raw(11, "a", app="web"), raw(12, "b"), raw(13, "a", version=2, app="web"),
                  raw(14, "a", kind="DELETE", app="web")):
        cache._publish(event)
    sub = await cache.subscribe(11, None, Selector("app=web"))
    assert sub is not None and names(sub) == [("MODIFIED", "a"), ("DELETED", "a")]
    cache._publish(raw(15, "c", app="web"))
    assert names(sub) == [("ADDED", "c")]
    future = await cache.subscribe(20, None, Selector(""))  # ahead of the cache: nothing up to 20 is sent
    assert future is not None
    cache._publish(raw(16, "d"))
    assert names(future) == []


async def test_a_revision_older_than_the_history_is_not_served_from_the_cache() -> None:
    cache = ready_cache(10, history=3)
    assert await cache.subscribe(9, None, Selector("")) is None  # before the cache started
    for revision in range(11, 16):
        cache._publish(raw(revision, f"w{revision}"))
    assert await cache.subscribe(11, None, Selector("")) is None  # 12 has left the history
    sub = await cache.subscribe(12, None, Selector(""))
    assert sub is not None and [n for _, n in names(sub)] == ["w13", "w14", "w15"]


async def test_a_watcher_that_does_not_read_is_ended_with_410() -> None:
    cache = ready_cache(0, history=10)
    slow = await cache.subscribe(None, None, Selector(""))
    assert slow is not None
    for revision in range(1, QUEUE + 2):
        cache._publish(raw(revision, f"w{revision}"))
    last = None
    while not slow.queue.empty():
        last = slow.queue.get_nowait()
    assert isinstance(last, Gone) and "fell" in last.message and slow.ended


async def test_watches_share_one_etcd_watch_and_leave_nothing_behind(api: RunningApi) -> None:
    server = api.thread.server
    assert server is not None
    caches = server.ctx.watch_caches
    seen: list[list[str]] = [[] for _ in range(20)]
    async with api.client() as client:
        _, revision = await client.list("Workload")

        async def follow(i: int) -> None:
            async for item in client.watch("Workload", resource_version=revision):
                if item.object is not None:
                    seen[i].append(item.object.metadata.name)

        watchers = [asyncio.create_task(follow(i)) for i in range(20)]
        await eventually(lambda: caches.subscribers() == 20, what="20 subscribers")
        assert len(caches._caches) == 1  # one etcd watch for all of them
        await client.create(workload("shared"))
        await eventually(lambda: all(s == ["shared"] for s in seen), what="every watch saw it")
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    await eventually(lambda: caches.subscribers() == 0, what="closed watches unsubscribed")


async def test_a_watch_from_now_sees_what_comes_after(api: RunningApi) -> None:
    async with api.client() as client:
        got: list[str] = []

        async def follow() -> None:
            async for item in client.watch("Workload"):
                if item.object is not None:
                    got.append(item.object.metadata.name)
                    return

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        await client.create(workload("now"))
        await asyncio.wait_for(task, 10)
        assert got == ["now"]
