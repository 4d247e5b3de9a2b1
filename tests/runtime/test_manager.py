"""Controllers under the manager: leader election, fail-over, fencing, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from persys.errors import NotLeader
from persys.resources.model import ObjectKey, Resource
from persys.runtime import Controller, Manager, Result
from persys.runtime.leader import LeaderElector
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer, free_port
from tests.support.eventually import eventually
from tests.support.workloads import workload

ACTED = "test.persys.dev/acted-by"


class StampOnce(Controller):
    """Stamps each workload once with the identity of the manager that acted (an action that must not repeat)."""

    kind = "Workload"
    name = "stamp-once"

    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.actions = log

    async def reconcile(self, key: ObjectKey) -> Result:
        obj = self.cache.get(key)
        if obj is None or ACTED in obj.metadata.annotations:
            return Result()
        identity = self.manager.elector.identity
        acted = False

        def stamp(o: Resource) -> None:
            nonlocal acted
            if ACTED not in o.metadata.annotations:
                o.metadata.annotations[ACTED] = identity
                acted = True

        await self.store.modify("Workload", key.namespace, key.name, stamp, fence=self.fence)
        if acted:
            self.actions.append((identity, key.name))
        return Result()


@contextlib.asynccontextmanager
async def running(etcd_url: str, identity: str, log: list[tuple[str, str]],
                  listen: tuple[str, int] | None = None) -> AsyncIterator[tuple[Manager, asyncio.Task[None]]]:
    manager = Manager(Etcd(etcd_url), identity=identity, lease_ttl=2, listen=listen, owns_etcd=True)
    manager.add(StampOnce(log))
    task = asyncio.create_task(manager.run(), name=f"manager-{identity}")
    try:
        yield manager, task
    finally:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def test_failover_when_the_leader_is_cancelled(etcd_server: EtcdServer, store: ObjectStore) -> None:
    actions: list[tuple[str, str]] = []
    async with running(etcd_server.url, "a", actions) as (a, task_a), \
            running(etcd_server.url, "b", actions) as (b, task_b):
        await eventually(lambda: a.is_leader or b.is_leader)
        leader, standby, leader_task = (a, b, task_a) if a.is_leader else (b, a, task_b)
        await store.create(workload("one"))
        await eventually(lambda: len(actions) == 1)
        leader_task.cancel()
        await eventually(lambda: standby.is_leader, timeout=10)
        await store.create(workload("two"))
        await eventually(lambda: len(actions) == 2)
    names = [name for _, name in actions]
    assert sorted(names) == ["one", "two"]  # each action ran exactly once
    assert actions[1][0] == standby.elector.identity != leader.elector.identity


async def test_revoked_lease_deposes_the_leader_and_its_writes_are_fenced(etcd_server: EtcdServer,
                                                                          store: ObjectStore, etcd: Etcd) -> None:
    actions: list[tuple[str, str]] = []
    async with running(etcd_server.url, "a", actions) as (a, _), running(etcd_server.url, "b", actions) as (b, _):
        await eventually(lambda: a.is_leader or b.is_leader)
        leader, standby = (a, b) if a.is_leader else (b, a)
        old_fence = leader.fence()
        assert leader.elector.lease_id is not None
        await etcd.revoke_lease(leader.elector.lease_id)
        await eventually(lambda: standby.is_leader and not leader.is_leader, timeout=10)
        await store.create(workload("w"))
        with pytest.raises(NotLeader):
            await store.modify("Workload", "default", "w", lambda o: o.metadata.labels.update(x="y"),
                               fence=old_fence)
        await eventually(lambda: len(actions) == 1)
        assert actions == [(standby.elector.identity, "w")]
        kv = await etcd.get("/persys/leader/controllers")
        assert kv is not None and kv.value.decode() == standby.elector.identity


async def test_health_and_metrics(etcd_server: EtcdServer, store: ObjectStore) -> None:
    port = free_port()
    actions: list[tuple[str, str]] = []
    async with running(etcd_server.url, "solo", actions, listen=("127.0.0.1", port)) as (manager, _):
        await eventually(lambda: manager.is_leader)
        await store.create(workload("m"))
        await eventually(lambda: len(actions) == 1)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                health = await resp.json()
                assert resp.status == 200 and health["leader"] is True
                assert health["controllers"] == ["stamp-once"]
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
        for name in ("persys_workqueue_adds_total", "persys_reconcile_duration_seconds",
                     "persys_watch_relists_total", 'persys_leader{component="controllers"}'):
            assert name in text


class CrashOnce(StampOnce):
    """A controller with a background loop that has a bug the first time it runs."""

    name = "crash-once"
    crashed = 0

    def runnables(self) -> list[tuple[str, Any]]:
        return [("buggy", self._buggy())]

    async def _buggy(self) -> None:
        if CrashOnce.crashed == 0:
            CrashOnce.crashed += 1
            raise RuntimeError("a bug")
        await asyncio.Event().wait()


async def test_a_crashing_controller_steps_down_and_comes_back(etcd_server: EtcdServer, store: ObjectStore) -> None:
    actions: list[tuple[str, str]] = []
    manager = Manager(Etcd(etcd_server.url), identity="crashy", lease_ttl=2, listen=None, owns_etcd=True)
    manager.add(CrashOnce(actions))
    task = asyncio.create_task(manager.run())
    try:
        await eventually(lambda: CrashOnce.crashed == 1)
        await store.create(workload("after-crash"))
        await eventually(lambda: actions == [("crashy", "after-crash")], timeout=15)
        assert not task.done()
    finally:
        manager.stop()
        await asyncio.wait_for(task, 10)


async def test_a_standby_campaigns_when_the_key_is_deleted_not_at_its_next_retry(etcd: Etcd) -> None:
    leader = LeaderElector(etcd, "vacancy", identity="a", ttl=4)
    standby = LeaderElector(etcd, "vacancy", identity="b", ttl=4, retry_interval=120.0)
    await leader.acquire()
    campaign = asyncio.create_task(standby.acquire())
    try:
        await asyncio.sleep(0.5)  # the standby found the key taken and waits
        assert not campaign.done()
        await leader.resign()
        await asyncio.wait_for(campaign, 10)  # far sooner than its 120 s retry: the deletion woke it
        assert standby.is_leader
    finally:
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)
        await standby.resign()


async def test_a_leader_whose_event_loop_is_stuck_longer_than_its_lease_keeps_it(etcd: Etcd) -> None:
    """The keep-alive runs in a thread: a loop busy for 4 s (twice the lease) loses nothing."""
    elector = LeaderElector(etcd, "busy-loop", identity="a", ttl=2)
    fence = await elector.acquire()
    holding = asyncio.create_task(elector.hold())
    try:
        await asyncio.sleep(0.1)
        time.sleep(4)  # noqa: ASYNC251  # the loop is stuck on purpose: no task runs; the keep-alive thread does
        kv = await etcd.get(elector.key)
        assert kv is not None and kv.create_revision == fence.create_revision and kv.lease == elector.lease_id
        await asyncio.sleep(1)
        assert elector.is_leader and not holding.done()
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        await elector.resign()


async def test_a_wedged_event_loop_lets_its_lease_expire(etcd: Etcd) -> None:
    """Past ``stall_limit`` the thread stops renewing, so a standby can take over from a wedged process."""
    elector = LeaderElector(etcd, "wedged-loop", identity="a", ttl=1, stall_limit=1.5)
    await elector.acquire()
    holding = asyncio.create_task(elector.hold())
    try:
        await asyncio.sleep(0.1)
        time.sleep(4.5)  # noqa: ASYNC251  # stuck past the stall limit, then the lease TTL (and etcd expiry check)
        assert await etcd.get(elector.key) is None
        await asyncio.wait_for(holding, 5)  # the holder notices and steps down
        assert not elector.is_leader
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
        await elector.resign()
