"""The reconciler: drives each workload's container toward its spec through the node's agent.

``decisions.decide`` picks the action; this module carries it out (create, recreate, start,
restart, stop, delete, finalizer bookkeeping), records it in ``status.lastAction`` and
``status.lastReconcile``, emits Events and counts everything in ``ReconcileStats``. Event
driven (workload and node changes), plus a full pass every ``full_pass_seconds`` and whenever
``/persys/triggers/reconciler`` is written (``POST /reconciliation/trigger``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from persys.agentclient import AgentClient
from persys.controllers import decisions as d
from persys.controllers.agents import AgentPool
from persys.controllers.conditions import BY_NODE, FINALIZER, node_ready, workload_node
from persys.controllers.config import ControllersConfig
from persys.controllers.events import BACKOFF, CREATED, KILLING, NORMAL, RESTARTED, WARNING, EventRecorder
from persys.controllers.observer import observed_fields
from persys.controllers.stats import ReconcileStats, load_stats, save_stats
from persys.errors import Gone, NotFound, NotLeader, PersysError, StoreUnavailable
from persys.resources.hashing import spec_hash
from persys.resources.kinds import NODE, SECRET, WORKLOAD
from persys.resources.model import ObjectKey, Resource
from persys.runtime.clock import from_iso, to_iso
from persys.runtime.controller import Controller, Result

TRIGGER_KEY = "/persys/triggers/reconciler"
PENDING_OPERATION = ("queued", "running")

Change = Callable[[Resource], None]


class Reconciler(Controller):
    """Desired vs actual for every workload; one action at a time, never twice."""

    kind = WORKLOAD.kind
    name = "reconciler"

    def __init__(self, agents: AgentPool, config: ControllersConfig | None = None) -> None:
        super().__init__()
        self.agents = agents
        self.config = config or ControllersConfig()
        self.workers = self.config.workers
        self.resync_period = self.config.full_pass_seconds
        self.policy = d.Policy(grace=self.config.grace_seconds, backoff_initial=self.config.backoff_initial,
                               backoff_max=self.config.backoff_max, backoff_reset=self.config.backoff_reset,
                               node_lost_timeout=self.config.node_lost_timeout)
        self.stats = ReconcileStats()
        self._pass_done = asyncio.Event()
        self._last_actions: dict[ObjectKey, tuple[str, dict[str, Any]]] = {}

    def declare(self) -> None:
        self.nodes = self.manager.informer(NODE.kind)
        self.cache.add_index(BY_NODE, workload_node)
        self.recorder = EventRecorder(self.store, "reconciler", clock=self.clock)

    def setup(self) -> None:
        self.cache.add_handler(self.enqueue_handler, owner=self)
        self.nodes.add_handler(self._on_node, owner=self)

    def _on_node(self, event_type: str, node: Resource, old: Resource | None) -> None:
        if old is None or event_type == "DELETED" or node_ready(node) != node_ready(old):
            for workload in self.cache.by_index(BY_NODE, node.metadata.name):
                self.queue.add(workload.key)

    def runnables(self) -> list[tuple[str, Any]]:
        return [("trigger", self._watch_trigger()), ("stats", self._persist_stats())]

    def on_resync(self) -> None:
        self.full_pass()

    def full_pass(self) -> None:
        """Reconcile every workload once (and time it)."""
        keys = set(self.cache.keys())
        self.stats.start_pass(self.clock.now(), keys)
        for key in keys:
            self.queue.add(key)

    # -- one workload --

    async def reconcile(self, key: ObjectKey) -> Result:
        try:
            workload = self.cache.get(key)
            if workload is None:
                return Result()
            workload = self._with_own_memory(workload)
            node = self.nodes.get_by("", workload.spec["nodeName"]) if workload.spec.get("nodeName") else None
            now = self.clock.now()
            decision = d.decide(workload, node, now, self.policy)
            try:
                result = await self._execute(workload, node, decision)
            except Exception as e:
                self.stats.observe(decision.action, "error")
                await self._record_error(workload, decision, e)
                raise
            self.stats.observe(decision.action, "ok")
            return result
        finally:
            if self.stats.done(key, self.clock.now()):
                self._pass_done.set()

    def _with_own_memory(self, workload: Resource) -> Resource:
        """The cached workload, with our own latest action even if the cache has not caught up with it.

        The informer may deliver another writer's change (the monitor's) before ours; deciding on a
        view without our last action would launch a second time.
        """
        mine = self._last_actions.get(workload.key)
        if mine is None or mine[0] != workload.metadata.uid:
            return workload
        cached = workload.status.get("lastAction") or {}
        if (from_iso(cached.get("time")) or 0.0) >= (from_iso(mine[1].get("time")) or 0.0):
            del self._last_actions[workload.key]  # the cache has caught up
            return workload
        view = workload.copy()
        view.status["lastAction"] = dict(mine[1])
        return view

    async def _execute(self, workload: Resource, node: Resource | None, decision: d.Decision) -> Result:
        action = decision.action
        if action in (d.NONE, d.WAIT):
            await self._note(workload, decision)
            return Result(requeue_after=decision.requeue_after)
        if action == d.ADD_FINALIZER:
            await self._write(workload, _add_finalizer)
            return Result()
        if action == d.RELEASE:
            await self._release(workload, decision)
            return Result()
        assert node is not None
        agent = self.agents.client(node)
        if action in d.LAUNCHES:
            if await self._operation_pending(workload, agent):
                self._restart_grace(workload)
                return Result(requeue_after=self.policy.grace)
            if await self._agent_disagrees(workload, node, decision, agent):
                return Result(requeue_after=min(self.policy.grace, 1.0))
        if action == d.DELETE:
            await self._delete(workload, agent, decision)
            return Result()
        await self._act(workload, agent, decision)
        return Result(requeue_after=self.policy.grace)

    async def _agent_disagrees(self, workload: Resource, node: Resource, decision: d.Decision,
                               agent: AgentClient) -> bool:
        """Before launching, ask the agent itself: the monitor's report may still be on its way."""
        try:
            actual = await agent.get(workload.metadata.uid)
        except NotFound:
            actual = {"uid": workload.metadata.uid, "state": "missing"}
        view = workload.copy()
        view.status.update(observed_fields(actual, node.metadata.name))
        fresh = d.decide(view, node, self.clock.now(), self.policy)
        if _family(fresh.action) == _family(decision.action):
            return False
        self.log.info("agent state is ahead of the cache; not acting", workload=str(workload.key),
                      action=decision.action, agent_state=actual.get("state"))
        return True

    def _restart_grace(self, workload: Resource) -> None:
        """The agent is still busy: the grace period for its report starts again from now."""
        last = dict(workload.status.get("lastAction") or {})
        last["time"] = to_iso(self.clock.now())
        self._last_actions[workload.key] = (workload.metadata.uid, last)

    async def _operation_pending(self, workload: Resource, agent: AgentClient) -> bool:
        """The agent is still carrying out our last launch: never send a second one meanwhile."""
        op_id = (workload.status.get("lastAction") or {}).get("operation")
        if not op_id:
            return False
        try:
            op = await agent.operation(str(op_id))
        except NotFound:
            return False
        return str(op.get("state")) in PENDING_OPERATION

    async def _act(self, workload: Resource, agent: AgentClient, decision: d.Decision) -> None:
        uid, action = workload.metadata.uid, decision.action
        try:
            if action in (d.CREATE, d.RECREATE):
                op = await agent.apply(await self._body(workload))
            else:
                op = await {d.START: agent.start, d.RESTART: agent.restart, d.STOP: agent.stop}[action](uid)
        except NotFound:
            await self._write(workload, _mark_missing)  # the agent does not know it: recreate next time
            raise
        now = to_iso(self.clock.now())
        generation, wanted_hash = workload.metadata.generation, spec_hash(workload.spec)

        def change(obj: Resource) -> None:
            status = obj.status
            status["lastAction"] = {"action": action, "time": now, "generation": generation,
                                    "specHash": wanted_hash, "operation": op}
            status["lastReconcile"] = {"time": now, "action": action, "result": "ok", "message": decision.reason}
            _observe(obj, generation)
            status.pop("backoffUntil", None)
            if action in d.LAUNCHES and status.get("containerState") != "running":
                status["phase"] = "Starting"  # unless the agent already reported it running meanwhile
            if action == d.RESTART:
                status["restarts"] = int(status.get("restarts") or 0) + 1
                status["consecutiveFailures"] = decision.failures or 1

        await self._write(workload, change)
        self._last_actions[workload.key] = (uid, {"action": action, "time": now, "generation": generation,
                                                  "specHash": wanted_hash, "operation": op})
        self.log.info("acted", workload=str(workload.key), action=action, reason=decision.reason, operation=op)
        reason, message = {
            d.CREATE: (CREATED, f"Created container persys-{uid} on node {workload.spec['nodeName']}"),
            d.RECREATE: (CREATED, f"Recreated container persys-{uid} on node {workload.spec['nodeName']}: "
                                  f"{decision.reason}"),
            d.START: (RESTARTED, f"Starting container: {decision.reason}"),
            d.RESTART: (RESTARTED, f"Restarting container: {decision.reason}"),
            d.STOP: (KILLING, f"Stopping container: {decision.reason}"),
        }[action]
        await self.recorder.record(workload, NORMAL, reason, message, fence=self.fence)

    async def _body(self, workload: Resource) -> dict[str, Any]:
        """The request the agent gets: the workload with compose credentials resolved."""
        body = WORKLOAD.to_wire(workload)
        compose = body["spec"].get("compose") or {}
        if compose.get("authSecret"):
            secret = await self.store.get(SECRET.kind, workload.metadata.namespace, compose["authSecret"])
            body["spec"]["compose"] = {**compose, "auth": dict(secret.spec)}
        return body

    async def _delete(self, workload: Resource, agent: AgentClient, decision: d.Decision) -> None:
        await self.recorder.record(workload, NORMAL, KILLING, "Removing container: workload deleted",
                                   fence=self.fence)
        try:
            op = await agent.remove(workload.metadata.uid)
            result = await agent.wait(op, timeout=self.config.agent_timeout * 3)
            if result.get("state") != "succeeded" and "not found" not in str(result.get("message")):
                raise RuntimeError(f"agent could not remove the container: {result.get('message')}")
        except NotFound:
            pass
        await self._release(workload, decision)

    async def _release(self, workload: Resource, decision: d.Decision) -> None:
        if decision.warning:
            await self.recorder.record(workload, WARNING, KILLING, f"Released finalizer: {decision.reason}",
                                       fence=self.fence)
        await self._write(workload, _remove_finalizer)

    async def _note(self, workload: Resource, decision: d.Decision) -> None:
        """Record a none/wait decision only when it says something new (no write loops, no idle writes).

        New is: a phase or back-off to record, an error to clear, a different wait, or a spec
        generation not yet observed (once bound). A quiet decision ("container is running",
        "waiting for the scheduler", a grace wait) alone writes nothing: ``lastReconcile`` keeps
        the last action taken.
        """
        status, generation = workload.status, workload.metadata.generation
        last = status.get("lastReconcile") or {}
        until = to_iso(decision.backoff_until) if decision.backoff_until else None
        bound = bool(workload.spec.get("nodeName"))
        news = (decision.phase is not None and status.get("phase") != decision.phase) or \
            (until is not None and status.get("backoffUntil") != until) or last.get("result") == "error" or \
            (bound and status.get("observedGeneration") != generation) or \
            (not decision.quiet and (last.get("action"), last.get("message")) != (decision.action, decision.reason))
        if not news:
            return
        now = to_iso(self.clock.now())

        def change(obj: Resource) -> None:
            if not decision.quiet or last.get("result") == "error":
                obj.status["lastReconcile"] = {"time": now, "action": decision.action, "result": "ok",
                                               "message": decision.reason}
            if bound:
                _observe(obj, generation)
            if decision.phase:
                obj.status["phase"] = decision.phase
            if until:
                obj.status["backoffUntil"] = until
                obj.status["message"] = decision.reason

        await self._write(workload, change)
        if until and status.get("backoffUntil") != until:
            await self.recorder.record(workload, WARNING, BACKOFF, decision.reason, fence=self.fence)

    async def _record_error(self, workload: Resource, decision: d.Decision, error: Exception) -> None:
        now, message = to_iso(self.clock.now()), f"{type(error).__name__}: {error}"

        def change(obj: Resource) -> None:
            obj.status["lastReconcile"] = {"time": now, "action": decision.action, "result": "error",
                                           "message": message}

        try:
            await self._write(workload, change)
        except (NotFound, StoreUnavailable):
            pass

    async def _write(self, workload: Resource, change: Change) -> None:
        await self.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name, change,
                                fence=self.fence)

    # -- background: triggers and statistics --

    async def _watch_trigger(self) -> None:
        """A write to the trigger key (``POST /reconciliation/trigger``) starts a full pass."""
        etcd = self.store.etcd
        while True:
            try:
                revision = await etcd.revision()
                async for _ in etcd.watch(TRIGGER_KEY, revision + 1):
                    self.log.info("full pass triggered")
                    self.full_pass()
            except (StoreUnavailable, Gone) as e:
                self.log.warning("trigger watch broke; retrying", error=str(e))
            except Exception:
                self.log.exception("trigger watch failed; retrying")
            await asyncio.sleep(1.0)

    async def _persist_stats(self) -> None:
        etcd = self.store.etcd
        try:
            self.stats.load(await load_stats(etcd))
        except (StoreUnavailable, ValueError) as e:
            self.log.warning("could not load statistics", error=str(e))
        self.full_pass()
        while True:
            try:
                await asyncio.wait_for(self._pass_done.wait(), self.config.stats_seconds)
            except TimeoutError:
                pass
            self._pass_done.clear()
            if self.stats.dirty:
                try:
                    await save_stats(etcd, self.stats, self.fence)
                except NotLeader:
                    raise
                except PersysError as e:
                    self.log.warning("could not save statistics", error=e.message)


def _add_finalizer(obj: Resource) -> None:
    if not obj.metadata.deletionTimestamp and FINALIZER not in obj.metadata.finalizers:
        obj.metadata.finalizers.append(FINALIZER)


def _remove_finalizer(obj: Resource) -> None:
    obj.metadata.finalizers = [f for f in obj.metadata.finalizers if f != FINALIZER]


def _observe(obj: Resource, generation: int) -> None:
    """The reconciler has acted on (or looked at) the spec of ``generation``; never goes back."""
    obj.status["observedGeneration"] = max(int(obj.status.get("observedGeneration") or 0), generation)


def _mark_missing(obj: Resource) -> None:
    obj.status["containerState"] = "missing"


def _family(action: str) -> str:
    """Create and recreate are the same request to the agent (an apply)."""
    return "apply" if action in (d.CREATE, d.RECREATE) else action
