"""The scheduler: binds Pending workloads to Ready nodes that fit them, spreading the load.

A node fits when it is Ready and schedulable, its labels match ``spec.nodeSelector`` and its
allocatable cpu and memory minus what is already bound to it cover ``spec.resources``. Among
fitting nodes the least allocated wins. Binding is a compare-and-swap write of
``spec.nodeName`` (phase Scheduled, condition Scheduled). When nothing fits, a
``FailedScheduling`` event says why, node by node; the workload is retried when nodes change.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from persys.controllers.conditions import BY_NODE, node_labels, node_ready, set_condition, workload_node
from persys.controllers.events import FAILED_SCHEDULING, NORMAL, SCHEDULED, WARNING, EventRecorder
from persys.resources.kinds import NODE, WORKLOAD
from persys.resources.model import ObjectKey, Resource
from persys.resources.quantity import parse_cpu, parse_memory
from persys.runtime.clock import to_iso
from persys.runtime.controller import Controller, Result


@dataclass(frozen=True)
class Request:
    """What a workload asks of a node: millicores and bytes."""

    cpu: int = 0
    memory: int = 0

    @classmethod
    def of(cls, workload: Resource) -> Request:
        resources = workload.spec.get("resources") or {}
        return cls(parse_cpu(resources["cpu"]) if resources.get("cpu") else 0,
                   parse_memory(resources["memory"]) if resources.get("memory") else 0)

    def __add__(self, other: Request) -> Request:
        return Request(self.cpu + other.cpu, self.memory + other.memory)


@dataclass(frozen=True)
class Verdict:
    """How one node fares for one workload: the reasons it does not fit, or its score (lower wins)."""

    node: str
    reasons: tuple[str, ...] = ()
    score: float = 0.0
    bound: int = 0


def _allocatable(node: Resource) -> tuple[int | None, int | None]:
    """Allocatable (cpu, memory) of a node; None where the node reports none (no limit)."""
    alloc = node.status.get("allocatable") or node.status.get("capacity") or {}
    cpu = mem = None
    try:
        cpu = parse_cpu(alloc["cpu"]) if alloc.get("cpu") else None
    except ValueError:
        pass
    try:
        mem = parse_memory(alloc["memory"]) if alloc.get("memory") else None
    except ValueError:
        pass
    return cpu, mem


def assess(workload: Resource, node: Resource, used: Request, bound: int) -> Verdict:
    """Whether ``workload`` fits ``node`` given what is already ``used`` there (a pure function)."""
    name = node.metadata.name
    if not node_ready(node):
        return Verdict(name, ("not ready",))
    if node.spec.get("unschedulable"):
        return Verdict(name, ("unschedulable",))
    labels = node_labels(node)
    selector = workload.spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return Verdict(name, ("didn't match nodeSelector",))
    want = Request.of(workload)
    cpu, mem = _allocatable(node)
    reasons = []
    if cpu is not None and used.cpu + want.cpu > cpu:
        reasons.append("insufficient cpu")
    if mem is not None and used.memory + want.memory > mem:
        reasons.append("insufficient memory")
    if reasons:
        return Verdict(name, tuple(reasons))
    fractions = [(used.cpu + want.cpu) / cpu if cpu else 0.0, (used.memory + want.memory) / mem if mem else 0.0]
    return Verdict(name, (), sum(fractions) / len(fractions), bound)


def choose(verdicts: list[Verdict]) -> Verdict | None:
    """The least allocated fitting node (ties: fewest workloads, then name)."""
    fitting = [v for v in verdicts if not v.reasons]
    return min(fitting, key=lambda v: (v.score, v.bound, v.node)) if fitting else None


def failure_message(verdicts: list[Verdict]) -> str:
    """``0/3 nodes available: 2 insufficient memory, 1 didn't match nodeSelector``."""
    counts = Counter(reason for v in verdicts for reason in v.reasons)
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
    fitting = sum(1 for v in verdicts if not v.reasons)
    head = f"{fitting}/{len(verdicts)} nodes available"
    return f"{head}: {parts}" if parts else f"{head}: no nodes registered"


def pending(workload: Resource) -> bool:
    return not workload.spec.get("nodeName") and not workload.metadata.deletionTimestamp


class _AlreadyBound(Exception):
    """Raised inside a bind write when someone bound (or deleted) the workload first."""


class Scheduler(Controller):
    """Binds each Pending workload to the best fitting node, one at a time."""

    kind = WORKLOAD.kind
    name = "scheduler"
    workers = 1  # like kube-scheduler: one decision at a time, so two never take the same room

    def __init__(self, *, retry_seconds: float = 60.0) -> None:
        super().__init__()
        self.retry_seconds = retry_seconds
        self._assumed: dict[ObjectKey, tuple[str, Request]] = {}
        self.recorder: EventRecorder | None = None

    def declare(self) -> None:
        self.nodes = self.manager.informer(NODE.kind)
        self.cache.add_index(BY_NODE, workload_node)
        self.recorder = EventRecorder(self.store, "scheduler", clock=self.clock)

    def setup(self) -> None:
        self.cache.add_handler(self._on_workload, owner=self)
        self.nodes.add_handler(self._on_node, owner=self)

    def _on_workload(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        if event_type != "DELETED" and pending(obj):
            self.queue.add(obj.key)
        elif event_type == "DELETED" and obj.spec.get("nodeName"):
            self.enqueue_pending()  # room was freed

    def _on_node(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        if old is None or event_type == "DELETED" or _schedulable_view(obj) != _schedulable_view(old):
            self.enqueue_pending()

    def enqueue_pending(self) -> None:
        for workload in self.cache.objects():
            if pending(workload):
                self.queue.add(workload.key)

    def _used(self) -> dict[str, tuple[Request, int]]:
        """What is bound to each node (workloads in the cache plus bindings it has not seen yet)."""
        used: dict[str, tuple[Request, int]] = {}
        for node in self.nodes.objects():
            total, count = Request(), 0
            for workload in self.cache.by_index(BY_NODE, node.metadata.name):
                if workload.spec.get("desiredState") != "Stopped":
                    total, count = total + Request.of(workload), count + 1
            used[node.metadata.name] = (total, count)
        for key, (node_name, request) in list(self._assumed.items()):
            cached = self.cache.get(key)
            if cached is None or cached.spec.get("nodeName"):
                del self._assumed[key]  # the cache has caught up
            elif node_name in used:
                total, count = used[node_name]
                used[node_name] = (total + request, count + 1)
        return used

    async def reconcile(self, key: ObjectKey) -> Result:
        workload = self.cache.get(key)
        if workload is None or not pending(workload):
            return Result()
        used = self._used()
        verdicts = [assess(workload, node, *used.get(node.metadata.name, (Request(), 0)))
                    for node in sorted(self.nodes.objects(), key=lambda n: n.metadata.name)]
        best = choose(verdicts)
        if best is None:
            await self._unschedulable(workload, failure_message(verdicts))
            return Result(requeue_after=self.retry_seconds)
        await self._bind(workload, best.node)
        return Result()

    async def _bind(self, workload: Resource, node: str) -> None:
        now = to_iso(self.clock.now())

        def change(obj: Resource) -> None:
            if not pending(obj):
                raise _AlreadyBound()
            obj.spec["nodeName"] = node
            obj.status["phase"] = "Scheduled"
            obj.status["message"] = ""
            set_condition(obj.status, "Scheduled", "True", "Scheduled", f"assigned to {node}", now)

        try:
            await self.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name, change,
                                    fence=self.fence)
        except _AlreadyBound:
            return
        self._assumed[workload.key] = (node, Request.of(workload))
        self.log.info("scheduled", workload=str(workload.key), node=node)
        assert self.recorder is not None
        await self.recorder.record(workload, NORMAL, SCHEDULED,
                                   f"Successfully assigned {workload.metadata.namespace}/{workload.metadata.name}"
                                   f" to {node}", fence=self.fence)

    async def _unschedulable(self, workload: Resource, message: str) -> None:
        now = to_iso(self.clock.now())

        def change(obj: Resource) -> None:
            if not pending(obj):
                raise _AlreadyBound()
            obj.status["phase"] = "Pending"
            obj.status["message"] = message
            set_condition(obj.status, "Scheduled", "False", "Unschedulable", message, now)

        try:
            await self.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name, change,
                                    fence=self.fence)
        except _AlreadyBound:
            return
        self.log.info("unschedulable", workload=str(workload.key), reason=message)
        assert self.recorder is not None
        await self.recorder.record(workload, WARNING, FAILED_SCHEDULING, message, fence=self.fence)


def _schedulable_view(node: Resource) -> tuple[object, ...]:
    """The parts of a Node that scheduling depends on (heartbeats alone change nothing)."""
    return (node_ready(node), bool(node.spec.get("unschedulable")), sorted(node_labels(node).items()),
            sorted((node.status.get("allocatable") or {}).items()), node.metadata.deletionTimestamp)
