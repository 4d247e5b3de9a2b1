"""The status controller: the only writer of what agents observe about workloads.

Followers (``reports.py``) keep each Ready node's latest reports in a cache and enqueue the
workload keys they concern; ``reconcile(key)`` writes the latest report of the bound node into
``status`` (``phase.OBSERVED``, ``lastSeenTime``, the ``Ready`` condition, and the phase derived
from it all) when it changed. A node that is not Ready makes its workloads' container state
``unknown``; a workload unbound from its node loses its observed fields. Announcements are
Events: Started, Stopped (with the last log lines) and launch failures (the agent's reason and
message). A container a node runs for a workload that is gone, or bound elsewhere, is removed:
a node that comes back after its workloads were rescheduled never leaves a duplicate running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from persys.agentclient import AgentClient
from persys.controllers.agents import AgentPool
from persys.controllers.conditions import BY_NODE, BY_UID, node_ready, workload_node, workload_uid
from persys.controllers.config import ControllersConfig
from persys.controllers.events import NORMAL, STARTED, STOPPED, WARNING, EventRecorder
from persys.controllers.phase import OBSERVED, launch_failure, refresh_phase, set_ready
from persys.controllers.reports import Follower, Report, ReportCache
from persys.errors import AgentError, NotFound, PersysError
from persys.resources.kinds import NODE, WORKLOAD
from persys.resources.model import ObjectKey, Resource
from persys.resources.phase import ContainerState
from persys.runtime.clock import to_iso
from persys.runtime.controller import Controller, Result, Watch
from persys.runtime.informer import DELETED, IndexFunc

EXITS = (ContainerState.EXITED, ContainerState.DEAD)
SEEN = ("containerState", "containerID", "nodeName")  # what ``_seen_on`` and a new container change
UNHEALTHY = "Unhealthy"  # the agent stopped the container: a liveness or startup probe failed


def observation(report: Report | None, node: str) -> dict[str, Any]:
    """The status fields a report means (no report from a polled node: the container is missing)."""
    report = report or {}
    return {"containerState": report.get("state") or ContainerState.MISSING.value,
            "containerReason": report.get("reason") or "", "containerMessage": report.get("message") or "",
            "containerID": report.get("containerID") or "", "exitCode": report.get("exitCode"),
            "startedAt": report.get("startedAt"), "finishedAt": report.get("finishedAt"),
            "specHash": report.get("specHash") or "", "nodeName": node,
            "deployedRevision": report.get("revision") or None,
            "containerReady": report.get("containerReady") if report.get("state") == "running" else None,
            "probeMessage": (report.get("probeMessage") or None) if report.get("state") == "running" else None}


def _differs(workload: Resource, fields: Mapping[str, Any]) -> bool:
    return any(workload.status.get(k) != v for k, v in fields.items())


def _seen_on(workload: Resource, node: str) -> bool:
    """The status already holds an observation from ``node``."""
    return workload.status.get("nodeName") == node and bool(workload.status.get("containerState"))


class StatusController(Controller):
    """Agent reports → workload status, one write per burst."""

    kind = WORKLOAD.kind
    name = "status"

    def __init__(self, agents: AgentPool, config: ControllersConfig | None = None) -> None:
        super().__init__()
        self.agents = agents
        self.config = config or ControllersConfig()
        self.workers = max(1, min(self.config.workers, 8))
        self.reports = ReportCache()
        self._nodes_changed = asyncio.Event()

    def indexes(self) -> Mapping[str, IndexFunc]:
        return {BY_NODE: workload_node, BY_UID: workload_uid}

    def watches(self) -> Sequence[Watch]:
        return (Watch(NODE.kind, self._node_keys),)

    def declare(self) -> None:
        self.nodes = self.informer(NODE.kind)
        self.recorder = EventRecorder(self.store, "status", clock=self.clock)

    def setup(self) -> None:
        self.reports = ReportCache()  # a new term: nothing followed yet

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        """Only what changes an observation: a new or deleted workload, or another binding (reports
        enqueue the rest). Other controllers' writes, most of the traffic, cost a comparison.

        This controller's own write, once the cache has it, is compared with the reports again when
        they say otherwise by now: they may have changed while it was written, and the look they asked
        for then was made against the cache without it (a first report, looked at again before its
        write arrived, seems to come from a node that never reported the workload)."""
        if old is None or event_type == DELETED or obj.spec.get("nodeName") != old.spec.get("nodeName"):
            self.queue.add(obj.key)
        elif any(obj.status.get(k) != old.status.get(k) for k in SEEN) and self._outdated(obj):
            self.queue.add(obj.key)

    def _node_keys(self, event_type: str, node: Resource, old: Resource | None) -> Iterator[ObjectKey]:
        self._nodes_changed.set()  # wakes the follower supervisor, which reads the cache itself
        if old is None or event_type == DELETED or node_ready(node) != node_ready(old) \
                or node.spec.get("address") != old.spec.get("address"):
            yield from self._bound_to(node.metadata.name)

    def _bound_to(self, node: str) -> Iterator[ObjectKey]:
        """The keys of the workloads bound to ``node``."""
        return (w.key for w in self.cache.by_index(BY_NODE, node))

    def _on_report(self, node: str, report: Report) -> None:
        uid = str(report.get("uid") or "")
        for workload in self.cache.by_index(BY_UID, uid):
            self.queue.add(workload.key)
        if report.get("name"):
            self.queue.add(ObjectKey(WORKLOAD.kind, str(report.get("namespace") or "default"), str(report["name"])))

    def _on_synced(self, node: str) -> None:
        """A node's first full report since it was (again) followed: every workload bound to it is looked at,
        so that one whose container vanished while the node was not followed is no longer shown running."""
        for key in self._bound_to(node):
            self.queue.add(key)

    def runnables(self) -> list[tuple[str, Any]]:
        return [("followers", self._supervise())]

    # -- one workload --

    async def reconcile(self, key: ObjectKey) -> Result:
        workload = self.cache.get(key)
        await self._remove_strays(key, workload)
        if workload is None:
            return Result()
        fields = self._observe(workload)
        if fields is None or not _differs(workload, fields):
            return Result()
        now = to_iso(self.clock.now())

        def change(obj: Resource) -> None:
            if obj.spec.get("nodeName") != workload.spec.get("nodeName"):
                return  # rebound meanwhile: the next reconcile observes the new node
            obj.status.update(fields)
            for gone in [k for k, v in fields.items() if v is None]:
                del obj.status[gone]
            obj.status["lastSeenTime"] = now
            set_ready(obj, now)
            refresh_phase(obj)

        try:
            written = await self.store.modify(WORKLOAD.kind, key.namespace, key.name, change, fence=self.fence,
                                              base=workload)
        except NotFound:
            return Result()
        await self._announce(workload, written)
        return Result()

    def _outdated(self, workload: Resource) -> bool:
        fields = self._observe(workload)
        return fields is not None and _differs(workload, fields)

    def _observe(self, workload: Resource) -> dict[str, Any] | None:
        """What status should say now; None when there is nothing to say yet."""
        node_name = str(workload.spec.get("nodeName") or "")
        if not node_name:
            if not any(workload.status.get(k) not in (None, "") for k in OBSERVED):
                return None
            return {k: None for k in OBSERVED}  # unbound: what a former node said is history
        node = self.nodes.get_by("", node_name)
        if not node_ready(node):
            if workload.status.get("containerState") in (None, ContainerState.UNKNOWN):
                return None
            return {"containerState": ContainerState.UNKNOWN.value, "nodeName": node_name}
        report = self.reports.get(node_name, workload.metadata.uid)
        if report is None and (not self.reports.synced(node_name) or not _seen_on(workload, node_name)):
            return None  # no container, and none was ever reported there: "missing" would say nothing new
        return observation(report, node_name)

    async def _announce(self, before: Resource, after: Resource) -> None:
        old, new = before.status, after.status
        state, uid = new.get("containerState"), after.metadata.uid
        failure = launch_failure(after)
        if failure is not None and (old.get("containerReason"), old.get("finishedAt")) != \
                (new.get("containerReason"), new.get("finishedAt")):
            await self.recorder.record(after, WARNING, failure.value, str(new.get("containerMessage") or ""),
                                       fence=self.fence)
        if new.get("containerReason") == UNHEALTHY and (old.get("containerReason"), old.get("finishedAt")) != \
                (new.get("containerReason"), new.get("finishedAt")):
            await self.recorder.record(after, WARNING, UNHEALTHY, str(new.get("containerMessage") or ""),
                                       fence=self.fence)
        if new.get("probeMessage") and new.get("probeMessage") != old.get("probeMessage") \
                and "Readiness probe failed" in str(new.get("probeMessage")):
            await self.recorder.record(after, WARNING, UNHEALTHY, str(new.get("probeMessage")), fence=self.fence)
        if state == old.get("containerState"):
            return
        if state == ContainerState.RUNNING:
            await self.recorder.record(after, NORMAL, STARTED, f"Started container persys-{uid}", fence=self.fence)
        elif state in EXITS:
            logs = await self._logs(after, uid)
            message = f"Container exited with code {new.get('exitCode')}"
            await self.recorder.record(after, NORMAL if new.get("exitCode") == 0 else WARNING, STOPPED,
                                       f"{message}; last log lines:\n{logs}" if logs else message,
                                       fence=self.fence)

    async def _logs(self, workload: Resource, uid: str) -> str:
        try:
            return (await self._client(str(workload.spec.get("nodeName"))).logs(uid, tail=self.config.log_tail)) \
                .rstrip()
        except PersysError:
            return ""

    # -- containers that belong to nobody --

    async def _remove_strays(self, key: ObjectKey, workload: Resource | None) -> None:
        if not self.cache.synced.is_set():
            return
        for node, report in self.reports.named(key.namespace, key.name):
            uid = str(report.get("uid") or "")
            if report.get("state") in (None, ContainerState.MISSING) or (
                    workload is not None and workload.metadata.uid == uid
                    and workload.spec.get("nodeName") == node):
                continue
            where = "deleted" if workload is None or workload.metadata.uid != uid \
                else f"bound to {workload.spec.get('nodeName') or 'no node'}"
            self.log.warning("removing stray container", node=node, uid=uid, workload=where)
            try:
                await self._client(node).remove(uid)
            except NotFound:
                continue
            if workload is not None:
                await self.recorder.record(workload, WARNING, STOPPED,
                                           f"Removed stray container from node {node}: workload is {where}",
                                           fence=self.fence)

    # -- followers: one per Ready node with an address --

    def _client(self, node: str) -> AgentClient:
        obj = self.nodes.get_by("", node)
        if obj is None:
            raise AgentError(f"node {node} is gone")
        return self.agents.client(obj)

    async def _supervise(self) -> None:
        tasks: dict[str, asyncio.Task[None]] = {}
        async with asyncio.TaskGroup() as group:
            while True:
                wanted = {n.metadata.name for n in self.nodes.objects() if node_ready(n) and n.spec.get("address")}
                for name in [n for n, t in tasks.items() if n not in wanted or t.done()]:
                    tasks.pop(name).cancel()
                    self.reports.drop(name)
                for name in wanted - set(tasks):
                    follower = Follower(name, functools.partial(self._client, name), self.reports, self._on_report,
                                        poll_seconds=self.config.poll_seconds,
                                        backoff_max=self.config.stream_backoff_max, synced=self._on_synced)
                    tasks[name] = group.create_task(follower.run(), name=f"status-follow-{name}")
                self._nodes_changed.clear()
                with contextlib.suppress(TimeoutError):  # not wait_for: in 3.11 it can swallow a cancel
                    async with asyncio.timeout(1.0):
                        await self._nodes_changed.wait()
