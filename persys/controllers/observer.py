"""Turns what agents report into workload status: the monitor's eyes on every node.

For each Ready node one follower reads the agent's event stream (reconnecting with
back-off) and polls ``GET /v1/workloads`` as a resync. Each report updates the bound
workload's status (container state, id, exit code, times, phase, Ready condition) when it
changed; a state change fetches the last log lines into an Event. A container the node runs
for a workload that is gone or now bound to another node is removed: a node that comes back
after its workloads were rescheduled never leaves a duplicate running.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from persys.agentclient import AgentClient
from persys.controllers.conditions import BY_NODE, BY_UID, node_ready, set_condition
from persys.controllers.events import NORMAL, STARTED, STOPPED, WARNING
from persys.errors import AgentError, NotFound, NotLeader, PersysError, StoreUnavailable
from persys.resources.kinds import WORKLOAD
from persys.resources.model import Resource
from persys.runtime.clock import to_iso

if TYPE_CHECKING:
    from persys.controllers.monitor import Monitor

TRANSITIONAL = ("created", "restarting")  # states a container passes through on its way to running

OBSERVED = ("containerState", "containerID", "exitCode", "startedAt", "finishedAt", "specHash", "nodeName")


def phase_for(state: str, workload: Resource) -> str:
    """The workload phase an agent-reported container state means."""
    stopped = workload.spec.get("desiredState") == "Stopped"
    if state in ("running", "paused"):
        return "Running"
    if state in ("created", "restarting"):
        return "Starting"
    if state == "exited":
        if stopped:
            return "Stopped"
        failed = workload.status.get("exitCode") not in (0, None) and workload.spec.get("restartPolicy") == "Never"
        return "Failed" if failed else "Exited"
    if state == "dead":
        return "Failed"
    return "Stopped" if stopped else "Scheduled"  # missing: bound, no container (yet)


def observed_fields(actual: dict[str, Any], node: str) -> dict[str, Any]:
    return {"containerState": actual.get("state") or "missing", "containerID": actual.get("containerID") or "",
            "exitCode": actual.get("exitCode"), "startedAt": actual.get("startedAt"),
            "finishedAt": actual.get("finishedAt"), "specHash": actual.get("specHash") or "", "nodeName": node}


class AgentObserver:
    """The followers of every Ready node's agent, supervised by the monitor."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.nodes_changed = asyncio.Event()

    async def supervise(self) -> None:
        """Keep one follower per Ready node with an address; stop followers of nodes that are not."""
        tasks: dict[str, asyncio.Task[None]] = {}
        async with asyncio.TaskGroup() as group:
            while True:
                wanted = {n.metadata.name for n in self.monitor.cache.objects()
                          if node_ready(n) and n.spec.get("address")}
                for name in [n for n, t in tasks.items() if n not in wanted or t.done()]:
                    tasks.pop(name).cancel()
                for name in wanted - set(tasks):
                    tasks[name] = group.create_task(self._follow(name), name=f"monitor-follow-{name}")
                self.nodes_changed.clear()
                try:
                    await asyncio.wait_for(self.nodes_changed.wait(), 1.0)
                except TimeoutError:
                    pass

    async def _follow(self, node: str) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._stream(node), name=f"monitor-stream-{node}")
            group.create_task(self._poll(node), name=f"monitor-poll-{node}")

    def _client(self, node: str) -> AgentClient:
        obj = self.monitor.cache.get_by("", node)
        if obj is None:
            raise AgentError(f"node {node} is gone")
        return self.monitor.agents.client(obj)

    async def _stream(self, node: str) -> None:
        config = self.monitor.config
        delay = 0.5
        while True:
            try:
                client = self._client(node)
                async for event in client.events():
                    delay = 0.5
                    await self.observe(node, client, event, passing=True)
            except (AgentError, StoreUnavailable) as e:
                self.monitor.log.info("agent event stream broke; reconnecting", node=node, error=str(e),
                                      retry_in=delay)
            except NotLeader:
                raise
            except Exception:  # one bad report must not blind the monitor to a whole node
                self.monitor.log.exception("agent event handling failed; reconnecting", node=node)
            await asyncio.sleep(delay)
            delay = min(delay * 2, config.stream_backoff_max)

    async def _poll(self, node: str) -> None:
        while True:
            try:
                await self.sync(node)
            except (AgentError, StoreUnavailable) as e:
                self.monitor.log.info("agent poll failed", node=node, error=str(e))
            except NotLeader:
                raise
            except Exception:
                self.monitor.log.exception("agent poll handling failed", node=node)
            await asyncio.sleep(self.monitor.config.poll_seconds)

    async def sync(self, node: str) -> None:
        """Resync from ``GET /v1/workloads``; workloads the agent no longer reports become missing."""
        client = self._client(node)
        reported = await client.list()
        seen = set()
        for actual in reported:
            seen.add(str(actual.get("uid")))
            await self.observe(node, client, actual)
        for workload in self.monitor.workloads.by_index(BY_NODE, node):
            state = workload.status.get("containerState")
            if workload.metadata.uid not in seen and state not in (None, "missing") \
                    and workload.status.get("nodeName") == node:
                await self.observe(node, client, {"uid": workload.metadata.uid, "state": "missing"})

    async def observe(self, node: str, client: AgentClient, actual: dict[str, Any], *, passing: bool = False) -> None:
        """One agent report about one uid.

        ``passing``: a streamed report, soon followed by the next. A transitional state (created,
        restarting) after the reconciler already said Starting is then not written: it changes
        nothing anyone acts on, and the next report (running, exited) or the poll records it.
        """
        uid = str(actual.get("uid") or "")
        matches = self.monitor.workloads.by_index(BY_UID, uid)
        workload = matches[0] if matches else None
        if workload is None or workload.spec.get("nodeName") != node:
            await self._remove_stray(node, client, uid, actual, workload)
            return
        fields = observed_fields(actual, node)
        status = workload.status
        if all(status.get(k) == v for k, v in fields.items()) and _phase_agrees(status, workload):
            return
        if passing and _passing_state(status, fields):
            return
        changed = status.get("containerState") != fields["containerState"]
        await self._write(workload, fields, passing)
        if changed:
            await self._announce(workload, client, fields)

    async def _remove_stray(self, node: str, client: AgentClient, uid: str, actual: dict[str, Any],
                            workload: Resource | None) -> None:
        if actual.get("state") in (None, "missing") or not self.monitor.workloads.synced.is_set():
            return
        where = "deleted" if workload is None else f"bound to {workload.spec.get('nodeName') or 'no node'}"
        self.monitor.log.warning("removing stray container", node=node, uid=uid, workload=where)
        try:
            await client.remove(uid)
        except NotFound:
            return
        if workload is not None:
            await self.monitor.recorder.record(workload, WARNING, STOPPED,
                                               f"Removed stray container from node {node}: workload is {where}",
                                               fence=self.monitor.fence)

    async def _write(self, workload: Resource, fields: dict[str, Any], passing: bool = False) -> None:
        now = to_iso(self.monitor.clock.now())
        node = fields["nodeName"]

        def change(obj: Resource) -> None:
            if obj.spec.get("nodeName") != node:
                return  # rescheduled meanwhile: this report is about a container that must go
            if passing and _passing_state(obj.status, fields):
                return  # the cache was behind: the reconciler has said Starting meanwhile
            obj.status.update(fields)
            obj.status["lastSeenTime"] = now
            obj.status["phase"] = phase_for(fields["containerState"], obj)
            running = fields["containerState"] == "running"
            set_condition(obj.status, "Ready", "True" if running else "False",
                          "ContainerRunning" if running else "ContainerNotRunning",
                          f"container is {fields['containerState']}", now)

        try:
            await self.monitor.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name,
                                            change, fence=self.monitor.fence)
        except NotFound:
            return

    async def _announce(self, workload: Resource, client: AgentClient, fields: dict[str, Any]) -> None:
        state, uid = fields["containerState"], workload.metadata.uid
        if state == "running":
            await self.monitor.recorder.record(workload, NORMAL, STARTED, f"Started container persys-{uid}",
                                               fence=self.monitor.fence)
        elif state in ("exited", "dead"):
            logs = await self._logs(client, uid)
            message = f"Container exited with code {fields['exitCode']}"
            await self.monitor.recorder.record(workload, NORMAL if fields["exitCode"] == 0 else WARNING, STOPPED,
                                               f"{message}; last log lines:\n{logs}" if logs else message,
                                               fence=self.monitor.fence)

    async def _logs(self, client: AgentClient, uid: str) -> str:
        try:
            return (await client.logs(uid, tail=self.monitor.config.log_tail)).rstrip()
        except PersysError:
            return ""


def _phase_agrees(status: dict[str, Any], workload: Resource) -> bool:
    """The recorded phase fits the recorded container state (the reconciler may say CrashLoopBackOff)."""
    state = str(status.get("containerState") or "missing")
    phase = status.get("phase")
    return phase == phase_for(state, workload) or (state == "exited" and phase == "CrashLoopBackOff")


def _passing_state(status: dict[str, Any], fields: dict[str, Any]) -> bool:
    """A transitional state reported after the reconciler already recorded Starting: nothing new to act on."""
    return fields["containerState"] in TRANSITIONAL and status.get("phase") == "Starting"
