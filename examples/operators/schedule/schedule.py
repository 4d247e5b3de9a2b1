"""The Schedule operator: a job Workload every ``spec.every`` seconds, the last ``spec.keep`` kept.

Level-triggered, without a timer of its own: each reconcile creates the job that is due (if any),
deletes the jobs beyond ``keep`` and asks to be called again when the next one is due
(``ctx.requeue_after``). Jobs are owned by their Schedule, so deleting it deletes them all
(garbage collection). A job is named after the second it was due, so a job is never made twice.

    persys operator run examples/operators/schedule/schedule.py
"""

from __future__ import annotations

from typing import Any

from persys.errors import NotFound
from persys.operator import Context, Operator
from persys.resources import Resource
from persys.runtime.clock import SystemClock, from_iso, to_iso

DUE = "batch.example.com/due"  # annotation: the second a job was due
clock = SystemClock()
op = Operator("schedule-operator")


@op.reconcile("batch.example.com/v1", "Schedule", owns=["Workload"])
async def reconcile(schedule: Resource, ctx: Context) -> dict[str, Any]:
    every, keep, now = schedule.spec["every"], schedule.spec["keep"], clock.now()
    last = from_iso(schedule.status.get("lastScheduleTime")) or 0.0
    jobs = [job for job in await ctx.owned("Workload") if not job.metadata.deletionTimestamp]
    if now >= last + every:
        last = now
        jobs.append(await ctx.ensure(job_for(schedule, int(now))))
    jobs.sort(key=lambda job: int(job.metadata.annotations.get(DUE, "0")))
    for old in jobs[:-keep]:
        try:
            await ctx.client.delete("Workload", old.metadata.name, namespace=old.metadata.namespace)
        except NotFound:
            pass  # gone already
    ctx.requeue_after(last + every - now)
    return {"lastScheduleTime": to_iso(last), "jobs": [job.metadata.name for job in jobs[-keep:]]}


def job_for(schedule: Resource, due: int) -> dict[str, Any]:
    return {
        "apiVersion": "persys.dev/v1", "kind": "Workload",
        "metadata": {"name": f"{schedule.metadata.name}-{due}", "annotations": {DUE: str(due)},
                     "labels": {"batch.example.com/schedule": schedule.metadata.name}},
        "spec": {"image": schedule.spec["image"], "command": schedule.spec["command"], "restartPolicy": "Never",
                 "network": "host"},
    }
