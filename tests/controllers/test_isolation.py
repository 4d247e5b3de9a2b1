"""No object can take the controller manager down: one key's failure stays that key's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from controller_support import ManagerFactory, NodeFactory, eventually, workload

from persys.resources import ObjectKey
from persys.runtime import Controller, Manager, Result
from persys.runtime.controller import RECONCILE_ERRORS
from persys.store import Etcd, ObjectStore
from persys.store.keys import object_key
from persys.store.server import EtcdServer, free_port


async def leadership_samples(manager: Manager, stop: asyncio.Event) -> AsyncIterator[bool]:
    while not stop.is_set():
        yield manager.leading.is_set()
        await asyncio.sleep(0.02)


async def watch_leadership(manager: Manager, stop: asyncio.Event) -> list[bool]:
    return [sample async for sample in leadership_samples(manager, stop)]


async def test_huge_backoff_in_stored_data_crash_loops_without_costing_leadership(
        store: ObjectStore, etcd: Etcd, hollow_node: NodeFactory, controllers: ManagerFactory) -> None:
    """Old data the API now refuses (1e308 s back-off) is bounded; the manager never steps down for it."""
    await hollow_node("crashy", exit_after=0.2)
    bad = workload("huge-backoff")
    created = await store.create(bad)
    key = object_key(store.registry.get("Workload"), "default", "huge-backoff")
    stored = await etcd.get(key)
    assert stored is not None
    raw = json.loads(stored.value)
    raw["spec"]["backoff"] = {"initialSeconds": 1e308, "maxSeconds": 1e308}
    await etcd.put(key, json.dumps(raw).encode())
    await store.create(workload("fine"))
    manager = await controllers(backoff_initial=0.3, backoff_max=0.6, grace_seconds=0.3)
    await eventually(lambda: _leading(manager), what="leadership")
    stop = asyncio.Event()
    sampler = asyncio.create_task(watch_leadership(manager, stop))

    async def in_backoff() -> bool:
        obj = await store.get("Workload", "default", "huge-backoff")
        return obj.status.get("phase") == "CrashLoopBackOff" and int(obj.status.get("restarts") or 0) >= 1

    await eventually(in_backoff, what="the bad workload restarted once and backing off")
    await asyncio.sleep(1.0)
    stop.set()
    samples = await sampler
    obj = await store.get("Workload", "default", "huge-backoff")
    assert all(samples), "the manager lost leadership while reconciling the bad workload"
    assert obj.metadata.uid == created.metadata.uid
    assert int(obj.status.get("restarts") or 0) <= 2, "a 1e308 s back-off must be bounded, not ignored"
    assert "back-off 86400s" in str(obj.status.get("message")), obj.status.get("message")


async def _leading(manager: Manager) -> bool:
    return manager.leading.is_set()


class Flaky(Controller):
    """Raises for one key, forever; counts the others."""

    kind = "Workload"
    name = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, int] = {}

    async def reconcile(self, key: ObjectKey) -> Result:
        self.seen[key.name] = self.seen.get(key.name, 0) + 1
        if key.name == "poison":
            raise OverflowError("this object cannot be handled")
        return Result(requeue_after=float("inf"))  # a nonsensical requeue must not break the queue either


async def test_one_key_raising_is_retried_alone_and_the_rest_goes_on(etcd_server: EtcdServer,
                                                                    store: ObjectStore) -> None:
    manager = Manager(Etcd(etcd_server.url), component="flaky", lease_ttl=2, listen=None, owns_etcd=True)
    flaky = Flaky()
    manager.add(flaky)
    await store.create(workload("poison"))
    task = asyncio.create_task(manager.run())
    errors_before = RECONCILE_ERRORS.labels("flaky")._value.get()
    try:
        await eventually(lambda: _leading(manager), what="leadership")
        await store.create(workload("healthy"))
        await eventually(lambda: _async(flaky.seen.get("healthy") == 1 and flaky.seen.get("poison", 0) >= 3),
                         what="the healthy key reconciled while the poison one retries")
        assert manager.leading.is_set()
        assert flaky.queue.num_requeues(ObjectKey("Workload", "default", "poison")) >= 3
        assert RECONCILE_ERRORS.labels("flaky")._value.get() - errors_before >= 3
    finally:
        manager.stop()
        await task


async def _async(value: bool) -> bool:
    return value



class CrashesOnce(Controller):
    """A controller whose background loop has a bug: it dies on its first term."""

    kind = "Workload"
    name = "crashes-once"

    def __init__(self) -> None:
        super().__init__()
        self.terms = 0

    async def reconcile(self, key: ObjectKey) -> Result:
        return Result()

    def runnables(self) -> list[tuple[str, Any]]:
        self.terms += 1
        return [("buggy", self._buggy())] if self.terms == 1 else []

    async def _buggy(self) -> None:
        raise KeyError("capacity")


async def test_a_controller_crash_turns_healthz_red_and_leadership_comes_back(etcd_server: EtcdServer) -> None:
    port = free_port()
    manager = Manager(Etcd(etcd_server.url), component="crashy", lease_ttl=2, listen=("127.0.0.1", port),
                      owns_etcd=True)
    crashy = CrashesOnce()
    manager.add(crashy)
    task = asyncio.create_task(manager.run())
    try:
        async def health() -> tuple[int, dict[str, Any]]:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                return resp.status, await resp.json()

        async def red() -> dict[str, Any] | None:
            try:
                code, body = await health()
            except aiohttp.ClientConnectionError:
                return None  # not listening yet
            return body if code == 503 and body.get("status") == "failing" else None

        body = await eventually(red, what="/healthz red after the crash")
        assert "leader" in body["reason"] and "KeyError" in body["reason"], body
        await eventually(lambda: _async(crashy.terms >= 2 and manager.leading.is_set()),
                         what="leading again after the back-off")
    finally:
        manager.stop()
        await task
