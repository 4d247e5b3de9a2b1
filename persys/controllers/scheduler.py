"""The scheduler: binds Pending workloads to Ready nodes that fit them, spreading the load.

A node fits when it is Ready and schedulable, its labels match ``spec.nodeSelector`` and its
allocatable cpu and memory minus what is already bound to it cover ``spec.resources``. Among
fitting nodes the one with the fewest siblings wins (workloads with the same controller, such as
the replicas of one Deployment: they spread over the nodes), then the least allocated. Binding
is a compare-and-swap write of ``spec.nodeName`` (phase Scheduled, condition Scheduled) that also adds the reconciler's
finalizer, so the container is guarded before it exists at no extra write. When nothing fits, a
``FailedScheduling`` event says why, node by node; the workload is retried when nodes change.

The scheduler owns the binding both ways: when a node has been NotReady for
``node_lost_timeout``, it unbinds that node's workloads (condition Scheduled False, NodeLost)
so they are placed elsewhere; the status controller then forgets what the lost node said.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from persys.controllers.conditions import (
    BY_NODE,
    FINALIZER,
    node_labels,
    node_lost_in,
    node_ready,
    set_condition,
    workload_node,
)
from persys.controllers.events import FAILED_SCHEDULING, NORMAL, RESCHEDULED, SCHEDULED, WARNING, EventRecorder
from persys.controllers.phase import refresh_phase
from persys.resources.kinds import NODE, WORKLOAD
from persys.resources.model import ObjectKey, Resource
from persys.resources.phase import DesiredState
from persys.resources.quantity import parse_cpu, parse_memory
from persys.runtime.clock import to_iso
from persys.runtime.controller import Controller, Result, Watch
from persys.runtime.expectations import Expectations
from persys.runtime.informer import DELETED, IndexFunc


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

    def __sub__(self, other: Request) -> Request:
        return Request(self.cpu - other.cpu, self.memory - other.memory)


@dataclass(frozen=True)
class Verdict:
    """How one node fares for one workload: the reasons it does not fit, or its score (lower wins)."""

    node: str
    reasons: tuple[str, ...] = ()
    score: float = 0.0
    bound: int = 0
    siblings: int = 0  # workloads on the node controlled by the same owner


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


@dataclass(frozen=True)
class NodeFacts:
    """What scheduling needs of a Node, parsed once per node change instead of once per decision."""

    name: str
    ready: bool
    unschedulable: bool
    labels: dict[str, str]
    cpu: int | None
    memory: int | None

    @classmethod
    def of(cls, node: Resource) -> NodeFacts:
        cpu, memory = _allocatable(node)
        return cls(node.metadata.name, node_ready(node), bool(node.spec.get("unschedulable")), node_labels(node),
                   cpu, memory)


def assess(workload: Resource, node: Resource, used: Request, bound: int, siblings: int = 0) -> Verdict:
    """Whether ``workload`` fits ``node`` given what is already ``used`` there (a pure function)."""
    return judge(Request.of(workload), workload.spec.get("nodeSelector") or {}, NodeFacts.of(node), used, bound,
                 siblings)


def judge(want: Request, selector: dict[str, str], node: NodeFacts, used: Request, bound: int,
          siblings: int = 0) -> Verdict:
    """``assess`` on parsed inputs: the scheduler's inner loop."""
    if not node.ready:
        return Verdict(node.name, ("not ready",))
    if node.unschedulable:
        return Verdict(node.name, ("unschedulable",))
    if any(node.labels.get(k) != v for k, v in selector.items()):
        return Verdict(node.name, ("didn't match nodeSelector",))
    cpu, mem = node.cpu, node.memory
    reasons = []
    if cpu is not None and used.cpu + want.cpu > cpu:
        reasons.append("insufficient cpu")
    if mem is not None and used.memory + want.memory > mem:
        reasons.append("insufficient memory")
    if reasons:
        return Verdict(node.name, tuple(reasons))
    fractions = [(used.cpu + want.cpu) / cpu if cpu else 0.0, (used.memory + want.memory) / mem if mem else 0.0]
    return Verdict(node.name, (), sum(fractions) / len(fractions), bound, siblings)


def choose(verdicts: list[Verdict]) -> Verdict | None:
    """The fitting node with the fewest siblings, then the least allocated (ties: fewest workloads, then name)."""
    fitting = [v for v in verdicts if not v.reasons]
    return min(fitting, key=lambda v: (v.siblings, v.score, v.bound, v.node)) if fitting else None


def owner_of(workload: Resource) -> str:
    """The uid of the workload's controller (its Deployment, say); "" when it has none."""
    return next((ref.uid for ref in workload.metadata.ownerReferences if ref.controller), "")


def failure_message(verdicts: list[Verdict]) -> str:
    """``0/3 nodes available: 2 insufficient memory, 1 didn't match nodeSelector``."""
    counts = Counter(reason for v in verdicts for reason in v.reasons)
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
    fitting = sum(1 for v in verdicts if not v.reasons)
    head = f"{fitting}/{len(verdicts)} nodes available"
    return f"{head}: {parts}" if parts else f"{head}: no nodes registered"


def pending(workload: Resource) -> bool:
    return not workload.spec.get("nodeName") and not workload.metadata.deletionTimestamp


class NodeUsage:
    """What the cache shows bound to each node, kept current from workload events (no rescans)."""

    def __init__(self) -> None:
        self.totals: dict[str, tuple[Request, int]] = {}
        self.siblings: Counter[tuple[str, str]] = Counter()  # (owner uid, node) → workloads it controls there
        self._parts: dict[ObjectKey, tuple[str, Request, str]] = {}

    def update(self, key: ObjectKey, workload: Resource | None) -> None:
        """Take the old contribution of ``key`` off its node and add the new one (None: it is gone)."""
        new = _contribution(workload) if workload is not None else None
        old = self._parts.get(key)
        if old == new:
            return
        if old is not None:
            total, count = self.totals[old[0]]
            total = total - old[1]
            if count > 1:
                self.totals[old[0]] = (total, count - 1)
            else:
                del self.totals[old[0]]
            if old[2]:
                self.siblings[(old[2], old[0])] -= 1
                if self.siblings[(old[2], old[0])] <= 0:
                    del self.siblings[(old[2], old[0])]
            del self._parts[key]
        if new is not None:
            total, count = self.totals.get(new[0], (Request(), 0))
            self.totals[new[0]] = (total + new[1], count + 1)
            if new[2]:
                self.siblings[(new[2], new[0])] += 1
            self._parts[key] = new


def _contribution(workload: Resource) -> tuple[str, Request, str] | None:
    """(node, request, owner) a workload takes up; None when unbound or desired Stopped."""
    node = workload.spec.get("nodeName")
    if not node or workload.spec.get("desiredState") == DesiredState.STOPPED:
        return None
    return str(node), Request.of(workload), owner_of(workload)


class _AlreadyBound(Exception):
    """Raised inside a bind write when someone bound (or deleted) the workload first."""


class _Moved(Exception):
    """Raised inside an unbind write when the workload is no longer on the lost node."""


class Scheduler(Controller):
    """Binds each Pending workload to the best fitting node; several bindings in flight at once.

    Like kube-scheduler, a decision is "assumed" (an expectation counted on its node) the moment
    it is made, before any await, so that concurrent workers never hand out the same room twice;
    the assumption goes when the cache shows the binding or when the bind fails. What the cache
    shows bound is summed incrementally from workload events, so a decision costs one pass
    over the nodes, not over every workload.
    """

    kind = WORKLOAD.kind
    name = "scheduler"
    workers = 16  # decisions are synchronous and assumed at once; the awaits (bind, event) overlap

    def __init__(self, *, retry_seconds: float = 60.0, node_lost_timeout: float = 300.0) -> None:
        super().__init__()
        self.retry_seconds = retry_seconds
        self.node_lost_timeout = node_lost_timeout
        self._usage = NodeUsage()
        self._facts: dict[str, NodeFacts] = {}
        self._sorted: list[str] | None = None
        self._scan_due = False  # a scan for pending workloads is scheduled for this turn of the loop
        self._assumed_use: dict[str, tuple[Request, int]] = {}  # per node: the assumed bindings' sum and count
        self._assumed_siblings: Counter[tuple[str, str]] = Counter()  # (owner uid, node): assumed bindings
        self._expired_at = 0.0  # when assumptions past their TTL were last dropped

    def indexes(self) -> Mapping[str, IndexFunc]:
        return {BY_NODE: workload_node}

    def watches(self) -> Sequence[Watch]:
        return (Watch(NODE.kind, self._node_keys),)

    def declare(self) -> None:
        self.nodes = self.informer(NODE.kind)
        self.assumed: Expectations[tuple[str, Request, str]] = Expectations(clock=self.clock, on_drop=self._unassume)
        self.recorder = EventRecorder(self.store, "scheduler", clock=self.clock)

    def setup(self) -> None:
        self._usage = NodeUsage()  # rebuilt from the replay of the cache when handlers connect
        self._facts.clear()
        self._sorted = None
        self.assumed.clear()
        self._assumed_use.clear()
        self._assumed_siblings.clear()

    def _assume(self, key: ObjectKey, node: str, request: Request, owner: str) -> None:
        """Count a decision on its node before any await: other workers see it at once."""
        self.assumed.expect(key, (node, request, owner))
        total, count = self._assumed_use.get(node, (Request(), 0))
        self._assumed_use[node] = (total + request, count + 1)
        if owner:
            self._assumed_siblings[(owner, node)] += 1

    def _unassume(self, assumed: tuple[str, Request, str]) -> None:
        node, request, owner = assumed
        total, count = self._assumed_use.get(node, (Request(), 0))
        if count <= 1:
            self._assumed_use.pop(node, None)
        else:
            self._assumed_use[node] = (total - request, count - 1)
        if owner:
            self._assumed_siblings[(owner, node)] -= 1
            if self._assumed_siblings[(owner, node)] <= 0:
                del self._assumed_siblings[(owner, node)]

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        self._usage.update(obj.key, None if event_type == DELETED else obj)
        self.assumed.observe(obj, deleted=event_type == DELETED)
        if event_type != DELETED and (pending(obj) or _bound_to_unready(obj, self.nodes.get_by)):
            self.queue.add(obj.key)
        elif event_type == DELETED and obj.spec.get("nodeName"):
            self.enqueue_pending_soon()  # room was freed

    def _node_keys(self, event_type: str, obj: Resource, old: Resource | None) -> Iterator[ObjectKey]:
        if event_type == DELETED:
            self._facts.pop(obj.metadata.name, None)
            self._sorted = None
        else:
            if obj.metadata.name not in self._facts:
                self._sorted = None
            self._facts[obj.metadata.name] = NodeFacts.of(obj)
        if old is None or event_type == DELETED or _schedulable_view(obj) != _schedulable_view(old):
            self.enqueue_pending_soon()
        if event_type == DELETED or (old is not None and node_ready(obj) != node_ready(old)):
            yield from (w.key for w in self.cache.by_index(BY_NODE, obj.metadata.name))

    def enqueue_pending_soon(self) -> None:
        """Enqueue the pending workloads once this turn of the event loop is over: the changes that call for it
        come in bursts (a new term replays every Node, a watch delivers many deletions at once), and one scan
        of the cache serves them all. A scan per change cost nodes × workloads at once: 100 × 10,000 blocked
        the loop for seconds at each term's start, long enough to lose the 3 s leader lease, again and again."""
        if not self._scan_due:
            self._scan_due = True
            asyncio.get_running_loop().call_soon(self.enqueue_pending)

    def enqueue_pending(self) -> None:
        self._scan_due = False
        for workload in self.cache.objects():
            if pending(workload):
                self.queue.add(workload.key)

    def _nodes(self) -> list[tuple[str, NodeFacts]]:
        """Every node's facts, by name."""
        if self._sorted is None:
            self._sorted = sorted(self._facts)
        return [(name, self._facts[name]) for name in self._sorted]

    def _used(self) -> dict[str, tuple[Request, int]]:
        """What is bound to each node: the cache's totals plus bindings it has not seen yet (kept summed as
        they are assumed and dropped: when the cache lags, thousands of them, too many to add up per decision)."""
        now = self.clock.now()
        if now - self._expired_at >= 1.0:
            self._expired_at = now
            self.assumed.expire()
        used = dict(self._usage.totals)
        for node_name, (request, n) in self._assumed_use.items():
            total, count = used.get(node_name, (Request(), 0))
            used[node_name] = (total + request, count + n)
        return used

    def _siblings(self, owner: str) -> Counter[str]:
        """How many workloads ``owner`` controls on each node, bindings not in the cache yet included."""
        counts: Counter[str] = Counter()
        if not owner:
            return counts
        for (uid, node_name), n in self._usage.siblings.items():
            if uid == owner:
                counts[node_name] += n
        for (uid, node_name), n in self._assumed_siblings.items():
            if uid == owner:
                counts[node_name] += n
        return counts

    async def reconcile(self, key: ObjectKey) -> Result:
        workload = self.cache.get(key)
        if workload is None:
            return Result()
        if not pending(workload):
            return await self._check_node(workload)
        used, want, selector = self._used(), Request.of(workload), workload.spec.get("nodeSelector") or {}
        empty, owner = (Request(), 0), owner_of(workload)
        siblings = self._siblings(owner)
        verdicts = [judge(want, selector, facts, *used.get(name, empty), siblings[name])
                    for name, facts in self._nodes()]
        best = choose(verdicts)
        if best is None:
            await self._unschedulable(workload, failure_message(verdicts))
            return Result(requeue_after=self.retry_seconds)
        self._assume(key, best.node, Request.of(workload), owner)
        try:
            revision = await self._bind(workload, best.node)
        except BaseException:
            self.assumed.forget(key)
            raise
        if revision is None:
            self.assumed.forget(key)
        else:
            self.assumed.written(key, revision)
        return Result()

    async def _check_node(self, workload: Resource) -> Result:
        """A bound workload: unbind it once its node is lost, so that it is placed elsewhere."""
        if workload.metadata.deletionTimestamp:
            return Result()
        name = str(workload.spec["nodeName"])
        lost_in = node_lost_in(self.nodes.get_by("", name), self.clock.now(), self.node_lost_timeout)
        if lost_in is None:
            return Result()
        if lost_in > 0:
            return Result(requeue_after=lost_in)
        await self._unbind(workload, name)
        return Result()

    async def _unbind(self, workload: Resource, node: str) -> None:
        now = to_iso(self.clock.now())
        message = f"node {node} lost for {self.node_lost_timeout:g}s; rescheduling"

        def change(obj: Resource) -> None:
            if obj.spec.get("nodeName") != node or obj.metadata.deletionTimestamp:
                raise _Moved()
            obj.spec["nodeName"] = ""
            set_condition(obj.status, "Scheduled", "False", "NodeLost", message, now)
            refresh_phase(obj)

        try:
            await self.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name, change,
                                    fence=self.fence)
        except _Moved:
            return
        self.log.warning("rescheduling", workload=str(workload.key), node=node)
        await self.recorder.record(workload, WARNING, RESCHEDULED, f"Node {node} lost; rescheduling",
                                   fence=self.fence)

    async def _bind(self, workload: Resource, node: str) -> int | None:
        """Write the binding (with the reconciler's finalizer: one write instead of two); its revision,
        or None if someone else bound or deleted it first."""
        now = to_iso(self.clock.now())

        def change(obj: Resource) -> None:
            if not pending(obj):
                raise _AlreadyBound()
            obj.spec["nodeName"] = node
            if FINALIZER not in obj.metadata.finalizers:
                obj.metadata.finalizers.append(FINALIZER)  # guards the container the reconciler will create
            set_condition(obj.status, "Scheduled", "True", "Scheduled", f"assigned to {node}", now)
            refresh_phase(obj)

        try:
            written = await self.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name,
                                              change, fence=self.fence, base=workload)
        except _AlreadyBound:
            return None
        self.log.info("scheduled", workload=str(workload.key), node=node)
        await self.recorder.record(workload, NORMAL, SCHEDULED,
                                   f"Successfully assigned {workload.metadata.namespace}/{workload.metadata.name}"
                                   f" to {node}", fence=self.fence)
        return written.resource_version

    async def _unschedulable(self, workload: Resource, message: str) -> None:
        now = to_iso(self.clock.now())

        def change(obj: Resource) -> None:
            if not pending(obj):
                raise _AlreadyBound()
            set_condition(obj.status, "Scheduled", "False", "Unschedulable", message, now)
            refresh_phase(obj)

        try:
            await self.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name, change,
                                    fence=self.fence)
        except _AlreadyBound:
            return
        self.log.info("unschedulable", workload=str(workload.key), reason=message)
        await self.recorder.record(workload, WARNING, FAILED_SCHEDULING, message, fence=self.fence)


def _bound_to_unready(workload: Resource, node: Callable[[str, str], Resource | None]) -> bool:
    name = workload.spec.get("nodeName")
    return bool(name) and not node_ready(node("", str(name)))


def _schedulable_view(node: Resource) -> tuple[object, ...]:
    """The parts of a Node that scheduling depends on (heartbeats alone change nothing)."""
    return (node_ready(node), bool(node.spec.get("unschedulable")), sorted(node_labels(node).items()),
            sorted((node.status.get("allocatable") or {}).items()), node.metadata.deletionTimestamp)
