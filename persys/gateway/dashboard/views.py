"""What the dashboard's pages show, as pure functions over API objects (tested row by row).

A page handler fetches objects through the API as the user and hands them here: rows of a list
with the kind's printer columns, which workloads are failing, counts by phase, nodes' allocatable
against what their workloads request, and the paging cursor. Nothing here does I/O but ``page``,
which only calls the ``fetch`` it is given.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from persys.errors import BadRequest
from persys.resources import Kind, Resource
from persys.resources.deployments import TEMPLATE_HASH_LABEL, Progress, progress
from persys.resources.phase import Phase
from persys.resources.quantity import format_cpu, format_memory, parse_cpu, parse_memory

PAGE_SIZE = 50  # rows a list page shows
NODE_WORKLOADS_SHOWN = 50  # workloads the nodes page names under each node; the rest are counted
FAILING_PHASES = frozenset({Phase.FAILED, Phase.CRASH_LOOP_BACKOFF, Phase.IMAGE_PULL_BACKOFF,
                            Phase.CREATE_CONTAINER_ERROR})
Key = str  # "namespace/name", or "name" for a cluster-scoped object


def key_of(obj: Resource) -> Key:
    return f"{obj.metadata.namespace}/{obj.metadata.name}" if obj.metadata.namespace else obj.metadata.name


def failing(workload: Resource) -> bool:
    """Whether a workload is in trouble: a failure phase, or exited with a non-zero code."""
    phase = str(workload.status.get("phase") or "")
    if phase in FAILING_PHASES:
        return True
    code = workload.status.get("exitCode")
    return phase == Phase.EXITED and code is not None and code != 0


@dataclass(frozen=True)
class Row:
    """One object in a list: its key, the page it links to, its cells and whether it is failing."""

    key: Key
    href: str
    cells: tuple[str, ...]
    phase: str = ""
    failing: bool = False
    logs: str = ""  # a workload's logs, one click away
    progress: Progress | None = None  # a Deployment's rollout


def object_href(kind: Kind, obj: Resource) -> str:
    namespace = obj.metadata.namespace or "-"
    if has_logs(kind):
        return f"/ui/workloads/{namespace}/{obj.metadata.name}"
    if is_deployment(kind):
        return f"/ui/deployments/{namespace}/{obj.metadata.name}"
    return f"/ui/kinds/{kind.group}/{kind.plural}/{namespace}/{obj.metadata.name}"


def row(kind: Kind, obj: Resource) -> Row:
    """A list row: the kind's printer columns (a custom kind's declared ones), namespace first when namespaced."""
    cells = tuple(render(obj) for _, render in kind.columns)
    if kind.namespaced:
        cells = (obj.metadata.namespace, *cells)
    href = object_href(kind, obj)
    if is_deployment(kind):
        rollout = progress(obj)
        return Row(key_of(obj), href, (*cells, rollout.state.value), progress=rollout)
    if not has_logs(kind):
        return Row(key_of(obj), href, cells)
    bad = failing(obj)
    return Row(key_of(obj), href, cells, str(obj.status.get("phase") or Phase.PENDING), bad,
               href + "#logs" if bad else "")


def has_logs(kind: Kind) -> bool:
    """Whether objects of ``kind`` are workloads (with logs, phases and buttons)."""
    return kind.kind == "Workload" and kind.builtin


def is_deployment(kind: Kind) -> bool:
    """Whether objects of ``kind`` are Deployments (with a rollout and replicas)."""
    return kind.kind == "Deployment" and kind.builtin


def summary(kind: Kind, obj: Resource) -> list[tuple[str, str]]:
    """An object's printer columns as (header, value): the top of its page."""
    return [(header, render(obj)) for header, render in kind.columns]


def headers(kind: Kind) -> tuple[str, ...]:
    names = tuple(name for name, _ in kind.columns)
    if is_deployment(kind):
        names = (*names, "ROLLOUT")
    return ("NAMESPACE", *names) if kind.namespaced else names


# -- a Deployment's replicas --

@dataclass(frozen=True)
class Replica:
    """One Workload of a Deployment: the revision it runs (its template hash), its phase, and whether it is
    ready and failing."""

    name: str
    namespace: str
    revision: str
    current: bool  # of the Deployment's current template
    phase: str
    ready: bool
    node: str
    failing: bool


def replicas(deployment: Resource, workloads: Iterable[Resource]) -> list[Replica]:
    """The Workloads ``deployment`` controls (an owner reference to its uid marked controller), current
    revision first, then by name."""
    current = str(deployment.status.get("templateHash") or "")
    found = []
    for w in workloads:
        if not any(ref.controller and ref.uid == deployment.metadata.uid for ref in w.metadata.ownerReferences):
            continue
        revision = w.metadata.labels.get(TEMPLATE_HASH_LABEL, "")
        found.append(Replica(w.metadata.name, w.metadata.namespace, revision, bool(current) and revision == current,
                             str(w.status.get("phase") or Phase.PENDING), _ready(w),
                             str(w.status.get("nodeName") or w.spec.get("nodeName") or ""), failing(w)))
    return sorted(found, key=lambda r: (not r.current, r.name))


def _ready(workload: Resource) -> bool:
    """Ready as the Deployment controller counts it (``persys.deployments.rollout.is_ready``): its Ready
    condition, or running when it has none (no readiness probe)."""
    condition = next((c for c in workload.status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if condition is not None:
        return bool(condition.get("status") == "True")
    return workload.status.get("phase") == Phase.RUNNING


def matches(obj: Resource, search: str) -> bool:
    """The search box: a case-insensitive part of the object's name (the API's ``nameContains``)."""
    return not search or search.lower() in obj.metadata.name.lower()


# -- paging: the API's continue token, plus how many of that API page a search already showed --

@dataclass(frozen=True)
class Cursor:
    """Where a page starts: the API's ``continue`` token of an API page, and how many of its objects to skip."""

    token: str = ""
    skip: int = 0

    def encode(self) -> str:
        raw = json.dumps({"c": self.token, "s": self.skip}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor a page's "next" link carried; BadRequest naming ``continue`` when it is not one."""
        if not text:
            return cls()
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            token, skip = data["c"], data["s"]
            if isinstance(token, str) and isinstance(skip, int) and not isinstance(skip, bool) and skip >= 0:
                return cls(token, skip)
        except (binascii.Error, ValueError, KeyError, TypeError):
            pass
        raise BadRequest("continue: not a page token of this dashboard (follow the Next link, or start again)")


Fetch = Callable[[int, str], Awaitable[tuple[list[Resource], str, str]]]  # (limit, continue) -> items, next, rv


@dataclass
class Page:
    """One page of a list: its objects, the cursor of the next page (None: last page) and the list's revision."""

    items: list[Resource] = field(default_factory=list)
    following: Cursor | None = None
    revision: str = ""


async def page(fetch: Fetch, cursor: Cursor, *, size: int = PAGE_SIZE) -> Page:
    """Read one page from the API: ``size`` objects. The API may send fewer than it was asked for (a label
    selector drops some of a page), so read on until ``size`` are found, remembering where in an API page the
    next page starts."""
    found = Page()
    token, skip = cursor.token, cursor.skip
    while True:
        items, following, revision = await fetch(size, token)
        found.revision = found.revision or revision
        for index in range(skip, len(items)):
            if len(found.items) == size:  # one more object: the next page starts here
                found.following = Cursor(token, index)
                return found
            found.items.append(items[index])
        if not following:
            return found
        token, skip = following, 0
        if len(found.items) == size:
            found.following = Cursor(token, 0)
            return found


def belongs(key: Key, low: Key, high: Key, *, first_page: bool, last_page: bool) -> bool:
    """Whether an object added while a page is open falls on it. The API lists in key order, so a page holds
    the keys from its first ``low`` to its last ``high``; the first page also what sorts before, the last
    page what sorts after, and an empty page (first and last) everything."""
    return (first_page or low <= key) and (last_page or key <= high)


# -- the overview --

@dataclass
class Census:
    """Workloads by phase and nodes by readiness, kept up to date from watch events."""

    phases: dict[Key, str] = field(default_factory=dict)
    failures: dict[Key, str] = field(default_factory=dict)  # failing workloads -> their phase
    nodes: dict[str, bool] = field(default_factory=dict)

    def workload(self, event: str, obj: Resource) -> None:
        key = key_of(obj)
        if event == "DELETED":
            self.phases.pop(key, None)
            self.failures.pop(key, None)
            return
        self.phases[key] = str(obj.status.get("phase") or Phase.PENDING)
        if failing(obj):
            self.failures[key] = self.phases[key]
        else:
            self.failures.pop(key, None)

    def node(self, event: str, obj: Resource, ready: bool) -> None:
        if event == "DELETED":
            self.nodes.pop(obj.metadata.name, None)
        else:
            self.nodes[obj.metadata.name] = ready

    def counts(self) -> list[tuple[str, int]]:
        """(phase, count), in the order of the phase enum, phases with none left out."""
        totals: dict[str, int] = {}
        for phase in self.phases.values():
            totals[phase] = totals.get(phase, 0) + 1
        order = [p.value for p in Phase]
        return sorted(totals.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))

    def ready(self) -> tuple[int, int]:
        """(Ready, NotReady) nodes."""
        up = sum(1 for ready in self.nodes.values() if ready)
        return up, len(self.nodes) - up

    def failing(self, limit: int = 20) -> list[tuple[Key, str]]:
        return sorted(self.failures.items())[:limit]


def stats_sample(stats: dict[str, Any]) -> dict[str, int]:
    """What the overview's chart plots from ``/reconciliation/stats``: actions and errors so far."""
    actions = stats.get("actions") or {}
    total = sum(int(v) for v in actions.values() if isinstance(v, (int, float))) if isinstance(actions, dict) else 0
    return {"actions": total, "errors": int(stats.get("errors") or 0),
            "processed": int(stats.get("totalProcessed") or 0)}


# -- nodes --

@dataclass
class NodeUsage:
    """A node: ready or not, allocatable cpu and memory against what its workloads request, and its workloads."""

    name: str
    ready: bool
    cpu: int | None  # allocatable millicores; None: the node reports none
    memory: int | None
    cpu_used: int = 0
    memory_used: int = 0
    workloads: list[Resource] = field(default_factory=list)

    def show(self, used: int, allocatable: int | None, unit: Callable[[int], str]) -> str:
        return f"{unit(used)} of {unit(allocatable)}" if allocatable is not None else f"{unit(used)} of no limit"

    @property
    def cpu_text(self) -> str:
        return self.show(self.cpu_used, self.cpu, format_cpu)

    @property
    def memory_text(self) -> str:
        return self.show(self.memory_used, self.memory, format_memory)

    @staticmethod
    def percent(used: int, allocatable: int | None) -> int:
        return min(100, round(100 * used / allocatable)) if allocatable else 0


def _quantity(value: Any, parse: Callable[[str], int]) -> int | None:
    try:
        return parse(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def node_usage(nodes: Iterable[tuple[Resource, bool]], workloads: Iterable[Resource]) -> list[NodeUsage]:
    """Each node (with whether it is Ready): allocatable (else capacity) against the requests of the workloads
    bound to it, as the scheduler counts them; workloads of nodes not listed are left out."""
    usage: dict[str, NodeUsage] = {}
    for node, ready in nodes:
        alloc = node.status.get("allocatable") or node.status.get("capacity") or {}
        usage[node.metadata.name] = NodeUsage(node.metadata.name, ready, _quantity(alloc.get("cpu"), parse_cpu),
                                              _quantity(alloc.get("memory"), parse_memory))
    for workload in workloads:
        place = usage.get(str(workload.status.get("nodeName") or workload.spec.get("nodeName") or ""))
        if place is None:
            continue
        place.workloads.append(workload)
        resources = workload.spec.get("resources") or {}
        place.cpu_used += _quantity(resources.get("cpu"), parse_cpu) or 0
        place.memory_used += _quantity(resources.get("memory"), parse_memory) or 0
    return sorted(usage.values(), key=lambda n: n.name)
