"""The monitor: node health, and nothing else.

A node whose heartbeat (``status.lastHeartbeatTime``) is older than ``heartbeat_timeout`` gets
its ``Ready`` condition set to False (and a NodeNotReady Event); a heartbeat makes it True
again. The reconcile key is a Node; a resync every ``node_check_seconds`` re-checks every
heartbeat, since a silent node produces no events. What follows from a NotReady node is for the
owners of the fields concerned: the status controller marks its workloads' containers unknown,
the scheduler moves them elsewhere once the node is lost.
"""

from __future__ import annotations

from persys.controllers.conditions import get_condition, set_condition
from persys.controllers.config import ControllersConfig
from persys.controllers.events import NODE_NOT_READY, WARNING, EventRecorder
from persys.resources.kinds import NODE
from persys.resources.model import ObjectKey, Resource
from persys.runtime.clock import from_iso, to_iso
from persys.runtime.controller import Controller, Result


class Monitor(Controller):
    """Watches node heartbeats and keeps each node's Ready condition true to them."""

    kind = NODE.kind
    name = "monitor"

    def __init__(self, config: ControllersConfig | None = None) -> None:
        super().__init__()
        self.config = config or ControllersConfig()
        self.workers = max(1, min(self.config.workers, 4))
        self.resync_period = self.config.node_check_seconds

    def declare(self) -> None:
        self.recorder = EventRecorder(self.store, "monitor", clock=self.clock)

    async def reconcile(self, key: ObjectKey) -> Result:
        node = self.cache.get(key)
        if node is None:
            return Result()
        age = self._age(node)
        ready = get_condition(node.status, "Ready") or {}
        if age <= self.config.heartbeat_timeout:
            if ready.get("status") != "True":
                await self._mark_ready(node)
            return Result(requeue_after=self.config.heartbeat_timeout - age + 0.1)
        if ready.get("status") != "False":
            await self._mark_not_ready(node, age)
        return Result(requeue_after=self.config.node_check_seconds)

    def _age(self, node: Resource) -> float:
        """Seconds since the node's last heartbeat; one that never sent any counts from its creation."""
        heartbeat = from_iso(node.status.get("lastHeartbeatTime")) or from_iso(node.metadata.creationTimestamp)
        return self.clock.now() - heartbeat if heartbeat is not None else float("inf")

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
        lagging = False

        def change(obj: Resource) -> None:
            nonlocal lagging
            # the write reads etcd afresh: a busy process's cache can lag behind heartbeats that did arrive,
            # and a node must not be declared dead for that (its workloads would be moved off it)
            if self._age(obj) <= self.config.heartbeat_timeout:
                lagging = True
                return
            set_condition(obj.status, "Ready", "False", "NodeStatusUnknown", message, now)

        await self.store.modify(NODE.kind, "", node.metadata.name, change, fence=self.fence)
        if lagging:
            self.log.info("heartbeat found in etcd, not yet in the cache: node kept Ready", node=node.metadata.name)
            return
        self.log.warning("node not ready", node=node.metadata.name, reason=message)
        await self.recorder.record(node, WARNING, NODE_NOT_READY, f"Node {node.metadata.name} is NotReady: {message}",
                                   fence=self.fence)
