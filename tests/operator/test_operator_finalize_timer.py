"""Finalize handlers hold deletion until they have run; timers run per object, over and over."""

from __future__ import annotations

from persys.client import ApiClient
from persys.errors import NotFound
from persys.operator import Context, Operator, TemporaryError
from persys.operator.handlers import finalizer_name
from persys.resources import Resource
from tests.operator.harness import run
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.workloads import manifest


async def test_finalize_runs_before_the_object_goes(api: RunningApi) -> None:
    cleaned: list[str] = []
    op = Operator("cleaner")

    @op.reconcile("persys.dev/v1", "Workload", selector="op=cleaner")
    async def reconcile(obj: Resource, ctx: Context) -> None:
        return None

    @op.finalize("persys.dev/v1", "Workload", selector="op=cleaner")
    async def cleanup(obj: Resource, ctx: Context) -> None:
        cleaned.append(obj.metadata.name)
        if len(cleaned) == 1:
            raise TemporaryError("the backup is still uploading", delay=0.2)

    async with api.client() as admin, run(op, api):
        await admin.apply_raw(manifest("f1", labels={"op": "cleaner"}))
        await admin.apply_raw(manifest("other"))
        obj = await eventually(lambda: _with_finalizer(admin, "f1"), what="the operator's finalizer")
        assert finalizer_name("cleaner") in obj.metadata.finalizers
        await admin.apply_raw(manifest("f1", labels={"op": "cleaner"}))  # a re-applied manifest keeps it
        assert finalizer_name("cleaner") in (await admin.get("Workload", "f1")).metadata.finalizers
        assert (await admin.get("Workload", "other")).metadata.finalizers == []  # not selected

        deleting = await admin.delete("Workload", "f1")
        assert deleting is not None and deleting.metadata.deletionTimestamp
        await eventually(lambda: _gone(admin, "f1"), what="the object deleted after its cleanup")
        assert cleaned == ["f1", "f1"]  # the first attempt asked to be retried


async def test_timer_runs_for_each_object_again_and_again(api: RunningApi) -> None:
    ticks: list[str] = []
    op = Operator("ticker")

    @op.timer("persys.dev/v1", "Workload", every=0.2, selector="op=ticker")
    async def tick(obj: Resource, ctx: Context) -> dict[str, str]:
        ticks.append(obj.metadata.name)
        return {"message": "ticked"}

    async with api.client() as admin, run(op, api):
        await admin.apply_raw(manifest("t1", labels={"op": "ticker"}))
        await admin.apply_raw(manifest("t2", labels={"op": "ticker"}))
        await admin.apply_raw(manifest("quiet"))
        await eventually(lambda: ticks.count("t1") >= 3 and ticks.count("t2") >= 3, what="three ticks each")
        assert "quiet" not in ticks
        assert (await admin.get("Workload", "t1")).status["message"] == "ticked"
        await admin.delete("Workload", "t1")
        await eventually(lambda: _gone(admin, "t1"), what="t1 deleted")
        after = ticks.count("t1")
        await eventually(lambda: ticks.count("t2") >= 6, what="t2 ticking on")
        assert ticks.count("t1") <= after + 1  # at most a tick already under way when the delete arrived


async def _with_finalizer(client: ApiClient, name: str) -> Resource | None:
    obj = await client.get("Workload", name)
    return obj if obj.metadata.finalizers else None


async def _gone(client: ApiClient, name: str) -> bool:
    try:
        await client.get("Workload", name)
    except NotFound:
        return True
    return False
