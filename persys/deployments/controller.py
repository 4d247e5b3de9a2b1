"""The Deployment controller, an operator on the public SDK (``persys.operator``) like any user's.

One reconcile handler per Deployment: it lists the Workloads the Deployment controls
(``ctx.owned``), asks ``rollout.plan`` what to create and delete, does it, records the revision
history and answers the status (the SDK writes it when it changed). Workloads are named
``<deployment>-<template hash>-<suffix>``, carry the hash as the label
``persys.dev/template-hash`` and an owner reference to the Deployment (``ctx.ensure``), so the
garbage collector deletes them with it.

A rollout that makes no progress for ``progressDeadlineSeconds`` is marked
``Progressing=False, ProgressDeadlineExceeded``; with ``autoRollback: true`` the controller then
writes the template of the last revision that became available back into ``spec.template`` and
records a Warning Event ``RolledBack`` saying why, and ``status.lastRollback``.

``persys up`` and ``persys controllers`` run it (``runner``), under the controllers' certificate,
leader-elected on the Lease ``deployment-controller``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import string
from typing import Any

from persys.deployments import history, progress
from persys.deployments.rollout import Counts, Plan, Replica, next_ready_in, plan, replica_of
from persys.errors import Conflict, NotFound
from persys.operator import Context, Operator
from persys.resources.deployments import (
    CHANGE_CAUSE,
    SUFFIX_LENGTH,
    TEMPLATE_HASH_LABEL,
    surge_and_unavailable,
    template_hash,
)
from persys.resources.model import ObjectKey, Resource
from persys.runtime.clock import Clock, SystemClock, to_iso

NAME = "deployment-controller"
ROLLED_BACK = "RolledBack"
_ALPHABET = string.ascii_lowercase + string.digits
_DELETING_TTL = 60.0  # a deletion the cache has not shown yet is trusted this long


def suffix() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(SUFFIX_LENGTH))


def workload_for(deployment: Resource, template: dict[str, Any], hash_: str) -> dict[str, Any]:
    """The manifest of one new replica of ``template``."""
    meta = template.get("metadata") or {}
    spec = {**template["spec"], "nodeName": ""}
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": f"{deployment.metadata.name}-{hash_}-{suffix()}",
                         "labels": {**(meta.get("labels") or {}), TEMPLATE_HASH_LABEL: hash_},
                         "annotations": dict(meta.get("annotations") or {})},
            "spec": spec}


class DeploymentController:
    """The handler and the little it remembers between calls: deletions its cache has not shown yet."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._deleting: dict[ObjectKey, float] = {}

    def operator(self) -> Operator:
        op = Operator(NAME)
        op.reconcile("persys.dev/v1", "Deployment", owns=["Workload"])(self.reconcile)
        return op

    async def reconcile(self, deployment: Resource, ctx: Context) -> dict[str, Any] | None:
        spec = deployment.spec
        now = self.clock.now()
        workloads = self._live(await ctx.owned("Workload"), now)
        revisions = history.record(deployment.status.get("revisions") or [], template_hash(spec["template"]),
                                   spec["template"], to_iso(now),
                                   deployment.metadata.annotations.get(CHANGE_CAUSE, ""))
        target = self._target(deployment, revisions, workloads)
        current = [replica_of(w, now, spec["minReadySeconds"]) for w in workloads]
        surge, unavailable = surge_and_unavailable(spec)
        if target is not None:
            todo = plan(int(spec["replicas"]), surge, unavailable, target["templateHash"], current)
            await self._act(deployment, ctx, todo, target, workloads)
        hash_ = target["templateHash"] if target is not None else template_hash(spec["template"])
        new_status = self._status(deployment, revisions, hash_, current, unavailable, now)
        moving = next(c for c in new_status["conditions"] if c["type"] == progress.PROGRESSING)
        if moving["reason"] == progress.DEADLINE and spec["autoRollback"]:
            if await self._roll_back(deployment, ctx, new_status, new_status["revisions"], hash_):
                return None
        self._requeue(ctx, current, moving, now, spec)
        return new_status

    def _status(self, deployment: Resource, revisions: history.Revisions, hash_: str, current: list[Replica],
                unavailable: int, now: float) -> dict[str, Any]:
        """The status for what was seen (the counts from before this call's creates and deletes)."""
        spec, status, stamp = deployment.spec, deployment.status, to_iso(now)
        replicas = int(spec["replicas"])
        counts = Counts.of(hash_, current)
        seen = progress.Seen((hash_, counts.replicas, counts.updated, counts.ready, counts.available),
                             counts.complete(replicas), bool(spec["paused"]), counts.available,
                             replicas - unavailable)
        old_signature = (status.get("templateHash"), status.get("replicas"), status.get("updatedReplicas"),
                         status.get("readyReplicas"), status.get("availableReplicas"))
        old = {c.get("type"): c for c in status.get("conditions") or []}
        moving = progress.progressing(old.get(progress.PROGRESSING), old_signature, seen, now, stamp,
                                      float(spec["progressDeadlineSeconds"]))
        if seen.complete and not seen.paused:
            revisions = history.mark_available(revisions, hash_)
        revisions = history.trim(revisions, int(spec["revisionHistoryLimit"]), {r.hash for r in current})
        return {
            "replicas": counts.replicas, "updatedReplicas": counts.updated, "readyReplicas": counts.ready,
            "availableReplicas": counts.available, "unavailableReplicas": max(0, replicas - counts.available),
            "observedGeneration": deployment.metadata.generation, "templateHash": hash_,
            "currentRevision": history.current_number(revisions), "revisions": revisions,
            "conditions": progress.merge(status.get("conditions") or [], moving,
                                         progress.available(old.get(progress.AVAILABLE), seen, stamp)),
        }

    def _live(self, owned: list[Resource], now: float) -> list[Resource]:
        """The Workloads not being deleted (nor deleted by this controller a moment ago)."""
        keys = {w.key for w in owned}
        for key, since in list(self._deleting.items()):
            if key not in keys or now - since > _DELETING_TTL:
                del self._deleting[key]
        return [w for w in owned if not w.metadata.deletionTimestamp and w.key not in self._deleting]

    def _target(self, deployment: Resource, revisions: history.Revisions,
                workloads: list[Resource]) -> dict[str, Any] | None:
        """The revision to roll towards: the current one; paused, the newest that has Workloads (or none)."""
        newest = max(revisions, key=lambda r: int(r["revision"]))
        if not deployment.spec["paused"]:
            return newest
        present = {w.metadata.labels.get(TEMPLATE_HASH_LABEL) for w in workloads}
        running = [r for r in revisions if r["templateHash"] in present]
        return max(running, key=lambda r: int(r["revision"])) if running else None

    async def _act(self, deployment: Resource, ctx: Context, todo: Plan, target: dict[str, Any],
                   workloads: list[Resource]) -> None:
        by_name = {w.metadata.name: w for w in workloads}

        async def delete(workload: Resource) -> None:
            self._deleting[workload.key] = self.clock.now()
            with contextlib.suppress(NotFound):
                await ctx.client.delete("Workload", workload.metadata.name, namespace=workload.metadata.namespace)

        # concurrently, as a ReplicaSet controller does: a rollout step is one round trip, not 25
        await asyncio.gather(*(ctx.ensure(workload_for(deployment, target["template"], target["templateHash"]))
                               for _ in range(todo.create)),
                             *(delete(by_name[name]) for name in todo.delete))
        if todo.create or todo.delete:
            ctx.log.info("rolling", target=target["revision"], created=todo.create, deleted=list(todo.delete))

    async def _roll_back(self, deployment: Resource, ctx: Context, new_status: dict[str, Any],
                         revisions: history.Revisions, hash_: str) -> bool:
        """Put the last available revision's template back; False when there is none to go back to."""
        good = history.last_available(revisions, hash_)
        if good is None:
            return False
        failed = history.current_number(revisions)
        reason = (f"revision {failed} made no progress for {deployment.spec['progressDeadlineSeconds']}s "
                  f"(progressDeadlineSeconds); rolled back to revision {good['revision']}")
        wanted = deployment.copy()
        wanted.spec["template"] = good["template"]
        try:
            written, _ = await ctx.client.apply(wanted)  # compare-and-swap on the version we decided on
        except Conflict:
            return True  # changed meanwhile: the change brings us back here
        await ctx.event(ROLLED_BACK, reason, warning=True)
        ctx.log.warning("rolled back", reason=reason)
        rollback = {"fromRevision": failed, "toRevision": int(good["revision"]), "reason": reason,
                    "time": to_iso(self.clock.now()), "generation": written.metadata.generation}
        try:
            await ctx.client.update_status("Deployment", written.metadata.name,
                                           {**written.status, **new_status, "lastRollback": rollback},
                                           namespace=written.metadata.namespace,
                                           resource_version=written.metadata.resourceVersion)
        except Conflict:
            pass  # the next reconcile writes the status; the Event already says what happened
        return True

    def _requeue(self, ctx: Context, current: list[Replica], moving: dict[str, Any], now: float,
                 spec: dict[str, Any]) -> None:
        """Look again when a ready replica becomes available, or when the rollout would miss its deadline."""
        for wait in (next_ready_in(current, now, float(spec["minReadySeconds"])),
                     progress.deadline_in(moving, now, float(spec["progressDeadlineSeconds"]))):
            if wait is not None:
                ctx.requeue_after(wait)


__all__ = ["NAME", "DeploymentController", "workload_for"]
