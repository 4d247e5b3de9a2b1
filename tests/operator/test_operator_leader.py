"""Leader election through the API: one of two operators writes; a deposed one cannot write."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from persys.client import ApiClient
from persys.errors import NotLeader
from persys.operator import Context, Operator
from persys.operator.runner import OperatorRunner
from persys.resources import Resource
from persys.store.server import free_port
from tests.operator.harness import run
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.workloads import manifest, workload


def stamping(name: str = "stamper") -> Operator:
    """Writes the identity of the process that first reconciled each selected workload into its status."""
    op = Operator(name)

    @op.reconcile("persys.dev/v1", "Workload", selector="op=stamp")
    async def reconcile(obj: Resource, ctx: Context) -> dict[str, str] | None:
        runner = ctx.host
        assert isinstance(runner, OperatorRunner)
        return None if obj.status.get("message") else {"message": runner.elector.identity}

    return op


async def stamp(client: ApiClient, name: str) -> str:
    return str((await client.get("Workload", name)).status.get("message") or "")


async def test_one_of_two_operators_leads_and_the_other_takes_over(api: RunningApi) -> None:
    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(api.client())
        first = await stack.enter_async_context(run(stamping(), api, identity="first", lease_ttl=3))
        await eventually(lambda: first.elector.is_leader, what="the first operator leading")
        second = await stack.enter_async_context(run(stamping(), api, identity="second", lease_ttl=3))
        await admin.apply_raw(manifest("w1", labels={"op": "stamp"}))
        assert await eventually(lambda: stamp(admin, "w1"), what="w1 stamped") == "first"
        assert not second.elector.is_leader and second.informers()[0].synced.is_set()  # a warm standby
        lease = await admin.get("Lease", "stamper")
        assert lease.spec["holderIdentity"] == "first"

        await first.stop()  # resigns: the standby need not wait the lease out
        await eventually(lambda: second.elector.is_leader, what="the second operator leading", timeout=10)
        await admin.apply_raw(manifest("w2", labels={"op": "stamp"}))
        assert await eventually(lambda: stamp(admin, "w2"), what="w2 stamped") == "second"
        assert await stamp(admin, "w1") == "first"  # nothing written twice
        lease = await admin.get("Lease", "stamper")
        assert (lease.spec["holderIdentity"], lease.spec["leaseTransitions"]) == ("second", 1)


async def test_a_leader_whose_lease_was_taken_cannot_write(api: RunningApi) -> None:
    async with api.client() as admin, run(stamping(), api, identity="deposed", lease_ttl=3) as runner:
        await eventually(lambda: runner.elector.is_leader, what="leading")
        lease = await admin.get("Lease", "stamper")
        lease.spec["holderIdentity"] = "usurper"
        await admin.apply(lease)  # compare-and-swap on the version read: the holder's next renewal conflicts
        await eventually(lambda: not runner.elector.is_leader, what="stepping down", timeout=10)
        with pytest.raises(NotLeader):
            await runner.client.create(workload("written-by-the-deposed"))
        with pytest.raises(NotLeader):
            await runner.recorder.record(lease, "Normal", "Test", "from the deposed leader")
        items, _ = await admin.list("Workload")
        assert "written-by-the-deposed" not in [w.metadata.name for w in items]
        await admin.apply_raw(manifest("w3", labels={"op": "stamp"}))
        await asyncio.sleep(0.5)
        assert await stamp(admin, "w3") == ""  # its controllers are stopped too
        assert (await admin.get("Lease", "stamper")).spec["holderIdentity"] == "usurper"


async def test_a_partitioned_leader_stops_writing_before_anyone_takes_over(api: RunningApi) -> None:
    async with contextlib.AsyncExitStack() as stack:
        admin = await stack.enter_async_context(api.client())
        cut = await stack.enter_async_context(ApiClient(f"http://127.0.0.1:{free_port()}"))
        first = await stack.enter_async_context(run(stamping(), api, identity="cut-off", lease_ttl=3))
        await eventually(lambda: first.elector.is_leader, what="the first operator leading")
        second = await stack.enter_async_context(run(stamping(), api, identity="standby", lease_ttl=3))
        both: list[float] = []

        async def watch_overlap() -> None:
            loop = asyncio.get_running_loop()
            while True:
                if first.elector.is_leader and second.elector.is_leader:
                    both.append(loop.time())
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch_overlap())
        try:
            first.elector.client = cut  # its renewals can no longer reach the API; nothing else changes
            await eventually(lambda: not first.elector.is_leader, what="the cut-off leader's fence closing")
            with pytest.raises(NotLeader):
                await first.client.create(workload("late-write"))
            await eventually(lambda: second.elector.is_leader, what="the standby taking over", timeout=15)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        assert both == []  # never two leaders at once
        await admin.apply_raw(manifest("w4", labels={"op": "stamp"}))
        assert await eventually(lambda: stamp(admin, "w4"), what="w4 stamped") == "standby"
