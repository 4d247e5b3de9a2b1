"""The informer against a real etcd: cache, indexes, resume after outage, relist on compaction and stall."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from persys.errors import PersysError, StoreUnavailable
from persys.resources import REGISTRY, Resource
from persys.runtime.informer import WATCH_RELISTS, WATCH_STALLS, Informer
from persys.store import Etcd, ObjectStore, WatchEvent
from persys.store.server import EtcdServer
from tests.support.eventually import eventually
from tests.support.workloads import workload


class GatedStore(ObjectStore):
    """The real store, with a switch that breaks the watch and holds it down (an etcd hiccup on cue)."""

    def __init__(self, etcd: Etcd) -> None:
        super().__init__(etcd, REGISTRY)
        self.open = asyncio.Event()
        self.open.set()
        self.breaking = False

    async def watch(self, kind_name: str, namespace: str | None = None, *, revision: int,
                    selector: object = None) -> AsyncIterator[WatchEvent]:
        await self.open.wait()
        async for event in super().watch(kind_name, namespace, revision=revision):
            if self.breaking:
                raise StoreUnavailable("watch broken by the test")
            yield event


def metric(counter: object, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())  # type: ignore[attr-defined]


async def test_cache_handlers_and_index(store: ObjectStore) -> None:
    await store.create(workload("a", labels={"app": "x"}))
    informer = Informer(store, "wl")
    informer.add_index("app", lambda o: [o.metadata.labels.get("app", "")])
    seen: list[tuple[str, str]] = []
    informer.add_handler(lambda t, o, old: seen.append((t, o.metadata.name)))
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced(10)
        assert seen == [("ADDED", "a")]
        await store.create(workload("b", labels={"app": "x"}))
        await store.replace(workload("a", labels={"app": "y"}))
        await store.delete("wl", "default", "b")
        await eventually(lambda: len(seen) == 4)
        assert seen[1:] == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
        assert [o.metadata.name for o in informer.by_index("app", "y")] == ["a"]
        assert informer.by_index("app", "x") == []
        late: list[str] = []
        informer.add_handler(lambda t, o, old: late.append(t))
        assert late == ["ADDED"]  # a late handler is replayed the cache
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_compaction_mid_watch_loses_no_delete(etcd: Etcd) -> None:
    gated = GatedStore(Etcd(etcd.url))
    writer = ObjectStore(etcd, REGISTRY)
    await writer.create(workload("a"))
    await writer.create(workload("b"))
    informer = Informer(gated, "wl", backoff=(0.05, 0.2))
    events: list[tuple[str, str]] = []
    informer.add_handler(lambda t, o, old: events.append((t, o.metadata.name)))
    task = asyncio.create_task(informer.run())
    gone_before = metric(WATCH_RELISTS, "Workload", "gone")
    try:
        await informer.wait_synced(10)
        gated.open.clear()
        gated.breaking = True
        await writer.create(workload("breaker"))  # the next event breaks the watch …
        await eventually(lambda: gated.open.is_set() is False and informer.revision > 0)
        await asyncio.sleep(0.3)  # … and the informer is now waiting to resume
        gated.breaking = False
        await writer.delete("wl", "default", "a")
        await writer.create(workload("c"))
        await etcd.compact(await etcd.revision())
        gated.open.set()
        await eventually(lambda: sorted(o.metadata.name for o in informer.objects()) == ["b", "breaker", "c"])
        assert ("DELETED", "a") in events
        assert metric(WATCH_RELISTS, "Workload", "gone") == gone_before + 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gated.etcd.close()


async def test_watchdog_relists_a_silent_watch(store: ObjectStore) -> None:
    informer = Informer(store, "wl", stall_seconds=0.2)
    stalls_before = metric(WATCH_STALLS, "Workload")
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced(10)
        await eventually(lambda: metric(WATCH_STALLS, "Workload") >= stalls_before + 2)
        await store.create(workload("after-stall"))
        await eventually(lambda: [o.metadata.name for o in informer.objects()] == ["after-stall"])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_resumes_after_etcd_outage(own_etcd: EtcdServer) -> None:
    await own_etcd.start()
    store = ObjectStore(Etcd(own_etcd.url, timeout=1), REGISTRY)
    writer = ObjectStore(Etcd(own_etcd.url, timeout=1), REGISTRY)
    informer = Informer(store, "wl", backoff=(0.05, 0.5))
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced(10)
        await writer.create(workload("before"))
        await eventually(lambda: len(informer.objects()) == 1)
        own_etcd.stop()
        await asyncio.sleep(0.5)
        try:
            await own_etcd.start()
        except PersysError:  # etcd itself sometimes aborts restarting on a loaded machine: once more
            await asyncio.sleep(0.5)
            await own_etcd.start()
        await _retry(lambda: writer.create(workload("after")))
        await eventually(lambda: len(informer.objects()) == 2, timeout=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.etcd.close()
        await writer.etcd.close()


async def _retry(call: object) -> Resource:
    for _ in range(100):
        try:
            return await call()  # type: ignore[operator, no-any-return]
        except StoreUnavailable:
            await asyncio.sleep(0.1)
    raise AssertionError("etcd did not come back")
