"""What a failing handler does: TemporaryError waits its delay, PermanentError stops until the spec changes,
any other exception is retried with back-off and shown as an Event and a Reconciled=False condition.
None of them ends the operator."""

from __future__ import annotations

import asyncio
from typing import Any

from persys.client import ApiClient
from persys.operator import Context, Operator, PermanentError, TemporaryError
from persys.resources import Resource
from tests.operator.harness import run
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.workloads import manifest

SELECTED = {"op": "errors"}


def failing(kind: str, failures: int, calls: list[str]) -> Operator:
    """An operator whose handler raises ``kind`` ``failures`` times, then succeeds."""
    op = Operator("failing")

    @op.reconcile("persys.dev/v1", "Workload", selector="op=errors")
    async def reconcile(obj: Resource, ctx: Context) -> dict[str, Any]:
        calls.append(obj.metadata.name)
        if len(calls) <= failures:
            if kind == "temporary":
                raise TemporaryError("the database is not ready", delay=0.2)
            if kind == "permanent":
                raise PermanentError("spec.image is not a database image")
            raise RuntimeError("boom")
        return {"message": "converged"}

    return op


async def reconciled(client: ApiClient, name: str) -> dict[str, Any] | None:
    obj = await client.get("Workload", name)
    return next((c for c in obj.status.get("conditions", []) if c["type"] == "Reconciled"), None)


async def events(client: ApiClient, name: str) -> list[Resource]:
    items, _ = await client.list("Event")
    return [e for e in items if e.spec["involvedObject"]["name"] == name]


async def test_temporary_error_retries_after_its_delay(api: RunningApi) -> None:
    calls: list[str] = []
    async with api.client() as admin, run(failing("temporary", 2, calls), api):
        await admin.apply_raw(manifest("t1", labels=SELECTED))
        condition = await eventually(lambda: reconciled(admin, "t1"), what="a Reconciled condition")
        await eventually(lambda: _is(admin, "t1", "True"), what="success after the temporary errors")
        assert len(calls) == 3
        assert condition["status"] == "False" or (await admin.get("Workload", "t1")).status["message"] == "converged"


async def test_temporary_error_is_shown_while_it_lasts(api: RunningApi) -> None:
    calls: list[str] = []
    async with api.client() as admin, run(failing("temporary", 1000, calls), api):
        await admin.apply_raw(manifest("t2", labels=SELECTED))
        condition = await eventually(lambda: reconciled(admin, "t2"), what="a Reconciled condition")
        assert (condition["status"], condition["reason"]) == ("False", "TemporaryError")
        assert condition["message"] == "the database is not ready"
        await eventually(lambda: len(calls) >= 3, what="retries after the delay")


async def test_permanent_error_stops_until_the_spec_changes(api: RunningApi) -> None:
    calls: list[str] = []
    async with api.client() as admin, run(failing("permanent", 1, calls), api):
        await admin.apply_raw(manifest("p1", labels=SELECTED))
        condition = await eventually(lambda: _is(admin, "p1", "False"), what="Reconciled=False")
        assert (condition["reason"], condition["message"]) == ("PermanentError", "spec.image is not a database image")
        warning = await eventually(lambda: events(admin, "p1"), what="a Warning Event")
        assert (warning[0].spec["type"], warning[0].spec["reason"]) == ("Warning", "PermanentError")

        await admin.patch("Workload", "p1", {"metadata": {"labels": {**SELECTED, "touched": "yes"}}})
        await asyncio.sleep(0.5)  # a label is not the spec: no new attempt
        assert calls == ["p1"]
        await admin.patch("Workload", "p1", {"spec": {"command": ["sleep", "7"]}})
        await eventually(lambda: _is(admin, "p1", "True"), what="success once the spec changed")
        assert calls == ["p1", "p1"]


async def test_any_other_exception_retries_with_back_off_and_is_visible(api: RunningApi) -> None:
    calls: list[str] = []
    async with api.client() as admin, run(failing("crash", 3, calls), api) as runner:
        await admin.apply_raw(manifest("c1", labels=SELECTED))
        condition = await eventually(lambda: _is(admin, "c1", "False"), what="Reconciled=False")
        assert (condition["reason"], condition["message"]) == ("HandlerError", "RuntimeError: boom")
        warning = await eventually(lambda: events(admin, "c1"), what="a Warning Event")
        assert warning[0].spec["reason"] == "HandlerError" and warning[0].spec["message"] == "RuntimeError: boom"
        await eventually(lambda: _is(admin, "c1", "True"), what="success after the retries")
        assert len(calls) == 4
        assert runner.health().healthy  # a handler's failure is its object's, never the process's


async def _is(client: ApiClient, name: str, value: str) -> dict[str, Any] | None:
    condition = await reconciled(client, name)
    return condition if condition is not None and condition["status"] == value else None
