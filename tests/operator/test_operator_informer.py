"""The API-backed informer: list + watch with resourceVersion, BOOKMARKs, relist on 410, stall watchdog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from persys.client import ApiClient
from persys.errors import Unavailable
from persys.operator.informer import ApiEvent, ApiSource, api_informer
from persys.runtime.informer import WATCH_RELISTS, WATCH_STALLS, Informer
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.operator.harness import operator_client
from tests.support.cluster import ApiThread, RunningApi
from tests.support.eventually import eventually
from tests.support.workloads import manifest


def metric(counter: object, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())  # type: ignore[attr-defined]


class GatedSource(ApiSource):
    """The API source with switches: break the watch and hold it down, or swallow every line (a dead stream)."""

    def __init__(self, client: ApiClient) -> None:
        super().__init__(client)
        self.open = asyncio.Event()
        self.open.set()
        self.breaking = False
        self.broken = asyncio.Event()  # set when the watch was broken
        self.silent = False

    async def watch(self, kind_name: str, namespace: str | None = None, *,
                    revision: int) -> AsyncIterator[ApiEvent]:
        await self.open.wait()
        async for event in super().watch(kind_name, namespace, revision=revision):
            if self.breaking:
                self.broken.set()
                raise Unavailable("watch broken by the test")
            if not self.silent:
                yield event


async def running(informer: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(informer.run(), name=f"informer-{informer.kind}")
    await informer.wait_synced(10)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_lists_and_watches_through_the_api_and_bookmarks_keep_it_alive(api: RunningApi) -> None:
    async with api.client() as admin, operator_client(api) as reader:
        await admin.apply_raw(manifest("a"))
        informer = api_informer(reader, "wl", stall_seconds=2.5)  # the test API sends a BOOKMARK every second
        seen: list[tuple[str, str]] = []
        informer.add_handler(lambda t, o, old: seen.append((t, o.metadata.name)))
        stalls = metric(WATCH_STALLS, "Workload")
        task = await running(informer)
        try:
            assert seen == [("ADDED", "a")]
            await admin.apply_raw(manifest("b"))
            await admin.patch("Workload", "a", {"metadata": {"labels": {"x": "y"}}})
            await admin.delete("Workload", "b")
            await eventually(lambda: len(seen) == 4, what="three more events")
            assert seen[1:] == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
            revision = informer.revision
            await asyncio.sleep(3.5)  # longer than the watchdog's interval, with nothing but BOOKMARKs
            assert metric(WATCH_STALLS, "Workload") == stalls
            assert informer.revision == revision
            await admin.apply_raw(manifest("c"))
            await eventually(lambda: sorted(o.metadata.name for o in informer.objects()) == ["a", "c"])
        finally:
            await stop(task)


@pytest.fixture
def short_cache_api(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Iterator[RunningApi]:
    """An API server whose watch cache keeps one event per kind: a watch that fell behind needs etcd's history."""
    thread = ApiThread(etcd_server.url, pki_home.home, watch_history=1).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home")
    finally:
        thread.stop()


async def test_relists_after_410_and_loses_no_delete(short_cache_api: RunningApi, etcd: Etcd) -> None:
    api = short_cache_api
    async with api.client() as admin, operator_client(api) as reader:
        await admin.apply_raw(manifest("a"))
        await admin.apply_raw(manifest("b"))
        gated = GatedSource(reader)
        informer = Informer(gated, "wl", backoff=(0.05, 0.2))
        events: list[tuple[str, str]] = []
        informer.add_handler(lambda t, o, old: events.append((t, o.metadata.name)))
        gone_before = metric(WATCH_RELISTS, "Workload", "gone")
        task = await running(informer)
        try:
            gated.open.clear()
            gated.breaking = True
            await admin.apply_raw(manifest("breaker"))  # the next line breaks the watch; it waits at the gate
            await asyncio.wait_for(gated.broken.wait(), 10)
            gated.breaking = False
            await admin.delete("Workload", "a")
            await admin.apply_raw(manifest("c"))
            await etcd.compact(await etcd.revision())  # the informer's revision is gone from cache and etcd: 410
            gated.open.set()
            await eventually(lambda: sorted(o.metadata.name for o in informer.objects()) == ["b", "breaker", "c"])
            assert ("DELETED", "a") in events  # synthetic: the relist found it missing
            assert metric(WATCH_RELISTS, "Workload", "gone") == gone_before + 1
        finally:
            await stop(task)


async def test_watchdog_relists_a_stream_that_went_silent(api: RunningApi) -> None:
    async with api.client() as admin, operator_client(api) as reader:
        gated = GatedSource(reader)
        gated.silent = True  # not even BOOKMARKs get through: a dead connection that never says so
        informer = Informer(gated, "wl", stall_seconds=0.5)
        stalls = metric(WATCH_STALLS, "Workload")
        task = await running(informer)
        try:
            await admin.apply_raw(manifest("late"))
            await eventually(lambda: [o.metadata.name for o in informer.objects()] == ["late"],
                             what="the relist after a stall")
            assert metric(WATCH_STALLS, "Workload") > stalls
        finally:
            await stop(task)
