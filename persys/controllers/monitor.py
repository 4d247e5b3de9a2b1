"""The monitor: node health, and (through ``AgentObserver``) workload status from the agents.

A node whose heartbeat (``status.lastHeartbeatTime``) is older than ``heartbeat_timeout`` is
marked NotReady and its workloads Unknown; when it stays NotReady for ``node_lost_timeout``
its workloads are rescheduled (``spec.nodeName`` cleared, phase Pending) so the scheduler
places them elsewhere. The reconcile key is a Node; a resync every ``node_check_seconds``
re-checks every heartbeat, since a silent node produces no events.
"""

from __future__ import annotations

from typing import Any

from persys.controllers.agents import AgentPool
from persys.controllers.conditions import BY_NODE, BY_UID, get_condition, set_condition, workload_node, workload_uid
from persys.controllers.config import ControllersConfig
from persys.controllers.events import NODE_NOT_READY, RESCHEDULED, WARNING, EventRecorder
from persys.controllers.observer import AgentObserver
from persys.errors import NotFound
from persys.resources.kinds import NODE, WORKLOAD
from persys.resources.model import ObjectKey, Resource
from persys.runtime.clock import from_iso, to_iso
from persys.runtime.controller import Controller, Result

CONTAINER_FIELDS = ("containerState", "containerID", "exitCode", "startedAt", "finishedAt", "specHash", "nodeName",
                    "lastAction", "backoffUntil", "consecutiveFailures")


class Monitor(Controller):
    """Watches node heartbeats and follows agents; reschedules the workloads of lost nodes."""

    kind = NODE.kind
    name = "monitor"

    def __init__(self, agents: AgentPool, config: ControllersConfig | None = None) -> None:
        super().__init__()
        self.agents = agents
        self.config = config or ControllersConfig()
        self.workers = max(1, min(self.config.workers, 4))
        self.resync_period = self.config.node_check_seconds
        self.observer = AgentObserver(self)

    def declare(self) -> None:
        self.workloads = self.manager.informer(WORKLOAD.kind)
        self.workloads.add_index(BY_NODE, workload_node)
        self.workloads.add_index(BY_UID, workload_uid)
        self.recorder = EventRecorder(self.store, "monitor", clock=self.clock)

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        self.queue.add(obj.key)
        self.observer.nodes_changed.set()

    def runnables(self) -> list[tuple[str, Any]]:
        return [("observer", self.observer.supervise())]

    async def reconcile(self, key: ObjectKey) -> Result:
        node = self.cache.get(key)
        if node is None:
            return Result()
        now = self.clock.now()
        # a node that never sent a heartbeat gets the timeout from its creation to send its first
        heartbeat = from_iso(node.status.get("lastHeartbeatTime")) or from_iso(node.metadata.creationTimestamp)
        age = now - heartbeat if heartbeat is not None else float("inf")
        ready = get_condition(node.status, "Ready") or {}
        if age <= self.config.heartbeat_timeout:
            if ready.get("status") != "True":
                await self._mark_ready(node)
            return Result(requeue_after=self.config.heartbeat_timeout - age + 0.1)
        if ready.get("status") != "False":
            await self._mark_not_ready(node, age)
            return Result(requeue_after=self.config.node_check_seconds)
        since = from_iso(ready.get("lastTransitionTime")) or now
        lost_in = since + self.config.node_lost_timeout - now
        if lost_in > 0:
            return Result(requeue_after=min(lost_in, self.config.node_check_seconds))
        await self._reschedule(node)
        return Result(requeue_after=self.config.node_check_seconds)

    async def _mark_ready(self, node: Resource) -> None:
        now = to_iso(self.clock.now())

        def change(obj: Resource) -> None:
            set_condition(obj.status, "Ready", "True", "HeartbeatResumed", "the agent is posting heartbeats", now)

        await self.store.modify(NODE.kind, "", node.metadata.name, change, fence=self.fence)
        self.log.info("node ready", node=node.metadata.name)

    async def _mark_not_ready(self, node: Resource, age: float) -> None:
        now = to_iso(self.clock.now())
        seen = f"{age:.0f}s ago" if age != float("inf") else "never"
        message = f"no heartbeat from the agent (last {seen}, timeout {self.config.heartbeat_timeout:g}s)"

        def change(obj: Resource) -> None:
            set_condition(obj.status, "Ready", "False", "NodeStatusUnknown", message, now)

        await self.store.modify(NODE.kind, "", node.metadata.name, change, fence=self.fence)
        self.log.warning("node not ready", node=node.metadata.name, reason=message)
        await self.recorder.record(node, WARNING, NODE_NOT_READY, f"Node {node.metadata.name} is NotReady: {message}",
                                   fence=self.fence)
        for workload in self.workloads.by_index(BY_NODE, node.metadata.name):
            await self._modify(workload, _unknown(node.metadata.name, now))

    async def _reschedule(self, node: Resource) -> None:
        now = to_iso(self.clock.now())
        name = node.metadata.name
        for workload in self.workloads.by_index(BY_NODE, name):
            if workload.metadata.deletionTimestamp:
                continue
            if await self._modify(workload, _unbind(name, now)):
                self.log.warning("rescheduling", workload=str(workload.key), node=name)
                await self.recorder.record(workload, WARNING, RESCHEDULED,
                                           f"Node {name} lost for {self.config.node_lost_timeout:g}s; rescheduling",
                                           fence=self.fence)

    async def _modify(self, workload: Resource, change: Any) -> bool:
        try:
            await self.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name, change,
                                    fence=self.fence)
        except NotFound:
            return False
        return True


def _unknown(node: str, now: str) -> Any:
    def change(obj: Resource) -> None:
        if obj.spec.get("nodeName") != node:
            return
        obj.status["phase"] = "Unknown"
        set_condition(obj.status, "Ready", "Unknown", "NodeNotReady", f"node {node} is not ready", now)
    return change


def _unbind(node: str, now: str) -> Any:
    def change(obj: Resource) -> None:
        if obj.spec.get("nodeName") != node or obj.metadata.deletionTimestamp:
            return
        obj.spec["nodeName"] = ""
        for field in CONTAINER_FIELDS:
            obj.status.pop(field, None)
        obj.status["phase"] = "Pending"
        obj.status["message"] = f"node {node} lost; rescheduling"
        set_condition(obj.status, "Scheduled", "False", "NodeLost", f"node {node} lost", now)
        set_condition(obj.status, "Ready", "False", "NodeLost", f"node {node} lost", now)
    return change
