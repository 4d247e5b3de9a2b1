"""The SDK against a real API: reconcile, ensure (owner reference, drift undone), status written only on change."""

from __future__ import annotations

from typing import Any

from persys.operator import Context, Operator
from persys.resources import Resource
from tests.operator.harness import run
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.workloads import IMAGE, manifest

PARENTS = "role=parent"


def child_of(parent: Resource) -> dict[str, Any]:
    greeting = parent.metadata.annotations.get("greeting", "hello")
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": f"{parent.metadata.name}-child", "labels": {"role": "child"}},
            "spec": {"image": IMAGE, "command": ["sleep", "3600"], "env": {"GREETING": greeting}}}


def parent_operator(calls: list[str]) -> Operator:
    op = Operator("parents")

    @op.reconcile("persys.dev/v1", "Workload", selector=PARENTS)
    async def reconcile(parent: Resource, ctx: Context) -> dict[str, Any]:
        calls.append(parent.metadata.name)
        child = await ctx.ensure(child_of(parent))
        children = await ctx.owned("Workload")
        return {"message": f"{len(children)} child: {child.metadata.name}"}

    return op


async def test_reconcile_ensures_a_child_and_writes_status_only_when_it_changes(api: RunningApi) -> None:
    calls: list[str] = []
    async with api.client() as admin, run(parent_operator(calls), api) as runner:
        await admin.apply_raw(manifest("p1", labels={"role": "parent"}, command=["sleep", "3600"]))
        child = await eventually(lambda: _get(admin, "p1-child"), what="the child")
        parent = await admin.get("Workload", "p1")
        ref = child.metadata.ownerReferences[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Workload", "p1", parent.metadata.uid, True)
        assert child.spec["env"] == {"GREETING": "hello"}
        parent = await eventually(lambda: _status(admin, "p1", "message"), what="the parent's status")
        assert parent.status["message"] == "1 child: p1-child"
        reconciled = [c for c in parent.status["conditions"] if c["type"] == "Reconciled"]
        assert reconciled and reconciled[0]["status"] == "True"
        assert "conditions" not in (await admin.get("Workload", "p1-child")).status  # not selected: untouched

        # the handler runs again (a change to its child enqueues it) but the status is the same: no write
        version, before = parent.metadata.resourceVersion, len(calls)
        await admin.patch("Workload", "p1-child", {"metadata": {"labels": {"role": "child", "extra": "x"}}})
        await eventually(lambda: len(calls) > before, what="another reconcile")
        await eventually(lambda: _labels(admin, "p1-child", {"role": "child"}), what="the label drift undone")
        assert (await admin.get("Workload", "p1")).metadata.resourceVersion == version
        assert runner.elector.is_leader


async def test_drift_is_undone_and_a_deleted_child_recreated(api: RunningApi) -> None:
    calls: list[str] = []
    async with api.client() as admin, run(parent_operator(calls), api):
        await admin.apply_raw(manifest("p2", labels={"role": "parent"}, command=["sleep", "3600"]))
        await eventually(lambda: _get(admin, "p2-child"), what="the child")
        await admin.patch("Workload", "p2-child", {"spec": {"env": {"GREETING": "tampered"}}})
        await eventually(lambda: _env(admin, "p2-child", "hello"), what="the spec drift undone")
        await admin.delete("Workload", "p2-child")
        recreated = await eventually(lambda: _get(admin, "p2-child"), what="the child recreated")
        assert recreated.metadata.ownerReferences[0].name == "p2"

        # a change to the parent reaches the child
        await admin.patch("Workload", "p2", {"metadata": {"annotations": {"greeting": "bonjour"}}})
        await eventually(lambda: _env(admin, "p2-child", "bonjour"), what="the child updated")


async def _get(client: Any, name: str) -> Resource | None:
    items, _ = await client.list("Workload")
    return next((w for w in items if w.metadata.name == name), None)


async def _status(client: Any, name: str, field: str) -> Resource | None:
    obj = await _get(client, name)
    return obj if obj is not None and field in obj.status else None


async def _labels(client: Any, name: str, labels: dict[str, str]) -> bool:
    obj = await _get(client, name)
    return obj is not None and obj.metadata.labels == labels


async def _env(client: Any, name: str, greeting: str) -> bool:
    obj = await _get(client, name)
    return obj is not None and obj.spec.get("env") == {"GREETING": greeting}
