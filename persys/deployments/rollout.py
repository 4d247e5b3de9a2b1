"""A rolling update as pure functions: which Workloads to create and delete, and what status says.

The Deployment controller reads its Workloads, turns each into a ``Replica`` (``replica_of``) and
asks ``plan`` what to do; ``plan`` is Kubernetes' rolling update (``reconcileNewReplicaSet`` and
``reconcileOldReplicaSets``) over single Workloads instead of ReplicaSets:

- new replicas (the target template's hash) are created up to ``replicas`` while the total stays
  within ``replicas + maxSurge``;
- old replicas go, unavailable ones first, only while at least ``replicas - maxUnavailable``
  stay available, and never while new ones that would replace them are still unavailable
  beyond that budget (so a broken new template cannot take the old replicas down with it);
- without old replicas it is plain scaling: create the missing, delete the surplus.

A Workload is *ready* when its ``Ready`` condition is "True"; one without a ``Ready`` condition
at all (written before readiness existed) is ready when its phase is Running (``is_ready``: the
one place that rule lives). It is *available* once it has been ready for ``minReadySeconds``.
Every function here is tested row by row (tests/deployments/test_rollout_plan.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from persys.resources.deployments import TEMPLATE_HASH_LABEL
from persys.resources.model import Resource
from persys.runtime.clock import from_iso


@dataclass(frozen=True)
class Replica:
    """What rolling needs of one Workload of a Deployment."""

    name: str
    hash: str
    scheduled: bool = True
    ready: bool = False
    available: bool = False
    created: str = ""  # creationTimestamp: among equals, the newest goes first
    ready_since: float | None = None


@dataclass(frozen=True)
class Plan:
    """What to do now: how many new-template Workloads to create, which Workloads to delete."""

    create: int = 0
    delete: tuple[str, ...] = ()


def is_ready(workload: Resource) -> tuple[bool, float | None]:
    """Whether ``workload`` is ready, and since when (Unix seconds; None when unknown)."""
    conditions = workload.status.get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is not None:
        if ready.get("status") != "True":
            return False, None
        return True, from_iso(ready.get("lastTransitionTime"))
    if workload.status.get("phase") == "Running":
        return True, from_iso(workload.status.get("startedAt"))
    return False, None


def replica_of(workload: Resource, now: float, min_ready_seconds: float) -> Replica:
    """``workload`` as a Replica at ``now``: available once ready for ``min_ready_seconds``."""
    ready, since = is_ready(workload)
    available = ready and (min_ready_seconds <= 0 or (since is not None and now - since >= min_ready_seconds))
    return Replica(workload.metadata.name, workload.metadata.labels.get(TEMPLATE_HASH_LABEL, ""),
                   scheduled=bool(workload.spec.get("nodeName")), ready=ready, available=available,
                   created=workload.metadata.creationTimestamp or "", ready_since=since if ready else None)


def deletion_order(replicas: Sequence[Replica]) -> list[Replica]:
    """The order replicas go in: unscheduled, not ready, ready but not available, available; newest first."""
    by_age = sorted(replicas, key=lambda r: (r.created, r.name), reverse=True)
    return sorted(by_age, key=lambda r: (r.scheduled, r.ready, r.available))


def plan(replicas: int, surge: int, unavailable: int, target: str, current: Sequence[Replica]) -> Plan:
    """What to create and delete so that ``current`` moves towards ``replicas`` of the ``target`` hash.

    ``current`` are the live Workloads (none being deleted); ``surge`` and ``unavailable`` are
    ``maxSurge`` and ``maxUnavailable`` in replicas.
    """
    new = [r for r in current if r.hash == target]
    old = [r for r in current if r.hash != target]
    if len(new) > replicas:  # scaled down (mid-rollout or not): the surplus new ones go first
        return Plan(delete=tuple(r.name for r in deletion_order(new)[:len(new) - replicas]))
    if not old:
        return Plan(create=replicas - len(new))
    create = min(replicas - len(new), max(0, replicas + surge - len(current)))
    min_available = replicas - unavailable
    new_unavailable = sum(1 for r in new if not r.available)
    budget = len(current) - min_available - new_unavailable
    if budget <= 0:
        return Plan(create=create)
    unhealthy = [r for r in deletion_order(old) if not r.available][:budget]
    budget -= len(unhealthy)
    available = sum(1 for r in current if r.available)
    healthy = [r for r in deletion_order(old) if r.available][:max(0, min(budget, available - min_available))]
    return Plan(create=create, delete=tuple(r.name for r in unhealthy + healthy))


@dataclass(frozen=True)
class Counts:
    """The replica counts status reports."""

    replicas: int
    updated: int
    ready: int
    available: int
    updated_available: int

    @classmethod
    def of(cls, target: str, current: Sequence[Replica]) -> Counts:
        return cls(len(current), sum(1 for r in current if r.hash == target), sum(1 for r in current if r.ready),
                   sum(1 for r in current if r.available),
                   sum(1 for r in current if r.hash == target and r.available))

    def complete(self, replicas: int) -> bool:
        """Every replica runs the target template and is available, and there are no others."""
        return self.replicas == self.updated == self.updated_available == replicas


def next_ready_in(current: Sequence[Replica], now: float, min_ready_seconds: float) -> float | None:
    """Seconds until the next ready replica becomes available (None: none is waiting for that)."""
    waits = [r.ready_since + min_ready_seconds - now for r in current
             if r.ready and not r.available and r.ready_since is not None]
    return max(0.0, min(waits)) if waits else None
