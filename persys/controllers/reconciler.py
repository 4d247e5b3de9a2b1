"""The reconciler: drives each workload's container toward its spec through the node's agent.

``decisions.decide`` picks the action; this module carries it out (create, recreate, start,
restart, stop, delete, finalizer bookkeeping), records it in ``status.lastAction`` and
``status.lastReconcile``, emits Events and counts everything in ``ReconcileStats``. Event
driven (workload and node changes), plus a full pass every ``full_pass_seconds`` and whenever
``/persys/triggers/reconciler`` is written (``POST /reconciliation/trigger``).

It owns the fields it decides (``lastAction``, ``lastReconcile``, ``backoffUntil``,
``consecutiveFailures``, ``restarts``, ``observedGeneration``) and never what the agent reports.
Its own writes are expectations: until the cache shows them it decides on the object its write
produced, so a monitor report arriving first can never make it launch twice. A first launch
goes straight to the agent; only a relaunch after an earlier one asks the agent whether that
one is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from persys.agentclient import AgentClient
from persys.controllers import decisions as d
from persys.controllers.agents import AgentPool
from persys.controllers.conditions import BY_NODE, FINALIZER, node_ready, workload_node
from persys.controllers.config import ControllersConfig
from persys.controllers.events import BACKOFF, CREATED, KILLING, NORMAL, RESTARTED, WARNING, EventRecorder
from persys.controllers.phase import refresh_phase
from persys.controllers.stats import ReconcileStats, load_stats, save_stats
from persys.errors import AgentError, Gone, NotFound, NotLeader, PersysError, StoreUnavailable
from persys.resources.hashing import spec_hash
from persys.resources.kinds import NODE, SECRET, WORKLOAD
from persys.resources.model import ObjectKey, Resource
from persys.runtime.backoff import Backoff
from persys.runtime.clock import to_iso
from persys.runtime.controller import Controller, Result, Watch
from persys.runtime.expectations import Expectations, fresher
from persys.runtime.informer import DELETED, IndexFunc

TRIGGER_KEY = "/persys/triggers/reconciler"
PENDING_OPERATION = ("queued", "running")
OPERATION_POLL = 1.0  # seconds: a relaunch for a new spec looks again this soon while the last launch is running

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
        self.policy = d.Policy(grace=self.config.grace_seconds, launch_check=self.config.launch_check_seconds,
                               backoff_initial=self.config.backoff_initial,
                               backoff_max=self.config.backoff_max, backoff_reset=self.config.backoff_reset,
                               node_lost_timeout=self.config.node_lost_timeout)
        self.stats = ReconcileStats()
        self._pass_done = asyncio.Event()

    def indexes(self) -> Mapping[str, IndexFunc]:
        return {BY_NODE: workload_node}

    def watches(self) -> Sequence[Watch]:
        return (Watch(NODE.kind, self._node_keys),)

    def declare(self) -> None:
        self.nodes = self.informer(NODE.kind)
        self.recorder = EventRecorder(self.store, "reconciler", clock=self.clock)
        self.written: Expectations[Resource] = Expectations(ttl=self.policy.grace * 2, clock=self.clock)

    def setup(self) -> None:
        self.written.clear()

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        """Every change but our own writes coming back: those are decided already (and requeued)."""
        self.written.observe(obj, deleted=event_type == DELETED)
        if old is None or event_type == DELETED or not _only_ours_changed(obj, old):
            self.queue.add(obj.key)

    def _node_keys(self, event_type: str, node: Resource, old: Resource | None) -> Iterator[ObjectKey]:
        if old is None or event_type == DELETED or node_ready(node) != node_ready(old):
            yield from (w.key for w in self.cache.by_index(BY_NODE, node.metadata.name))

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
            workload = fresher(self.cache.get(key), self.written.get(key))
            if workload is None:
                return Result()
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

    async def _execute(self, workload: Resource, node: Resource | None, decision: d.Decision) -> Result:
        if decision.if_forgotten and node is not None and await self._forgotten(workload, self.agents.client(node)):
            decision = d.Decision(decision.if_forgotten, "the agent no longer knows the last launch: it restarted")
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
        if action in d.LAUNCHES and await self._operation_pending(workload, agent):
            if (workload.status.get("lastAction") or {}).get("generation") != workload.metadata.generation:
                return Result(requeue_after=OPERATION_POLL)  # a new spec waits for the launch to end, no longer
            await self._restart_grace(workload)
            return Result(requeue_after=self.policy.grace)
        if action == d.DELETE:
            await self._delete(workload, agent, decision)
            return Result()
        await self._act(workload, agent, decision)
        return Result(requeue_after=self.policy.grace)

    async def _restart_grace(self, workload: Resource) -> None:
        """The agent is still busy with our last launch: its grace period starts again from now."""
        now = to_iso(self.clock.now())

        def change(obj: Resource) -> None:
            if obj.status.get("lastAction"):
                obj.status["lastAction"] = {**obj.status["lastAction"], "time": now}
                refresh_phase(obj)

        await self._write(workload, change)

    async def _operation_pending(self, workload: Resource, agent: AgentClient) -> bool:
        """The agent is still carrying out our last launch: never send a second one meanwhile.

        Only a relaunch asks: before the first launch nothing can be pending, which saves the
        agent a round trip on every create.
        """
        op = await self._last_operation(workload, agent)
        return op is not None and str(op.get("state")) in PENDING_OPERATION

    async def _forgotten(self, workload: Resource, agent: AgentClient) -> bool:
        """Our last launch, not reported yet, is unknown to the agent: it restarted and lost it (an unreachable
        agent may still be carrying it out)."""
        try:
            return await self._last_operation(workload, agent) is None
        except AgentError:
            return False

    async def _last_operation(self, workload: Resource, agent: AgentClient) -> dict[str, Any] | None:
        """The agent's record of our last launch; None without one, or when the agent does not know it."""
        op_id = (workload.status.get("lastAction") or {}).get("operation")
        if not op_id:
            return None
        try:
            return await agent.operation(str(op_id))
        except NotFound:
            return None

    async def _act(self, workload: Resource, agent: AgentClient, decision: d.Decision) -> None:
        uid, action = workload.metadata.uid, decision.action
        try:
            if action in (d.CREATE, d.RECREATE):
                op = await agent.apply(await self._body(workload))
            else:
                op = await {d.START: agent.start, d.RESTART: agent.restart, d.STOP: agent.stop}[action](uid)
        except NotFound:
            raise RuntimeError(f"the agent does not know {uid}; the next report will say it is missing") from None
        now = to_iso(self.clock.now())
        generation, wanted_hash = workload.metadata.generation, spec_hash(workload.spec)

        def change(obj: Resource) -> None:
            status = obj.status
            status["lastAction"] = {"action": action, "time": now, "generation": generation,
                                    "specHash": wanted_hash, "operation": op}
            status["lastReconcile"] = {"time": now, "action": action, "result": "ok", "message": decision.reason}
            _observe(obj, generation)
            status.pop("backoffUntil", None)
            if action == d.RESTART:
                status["restarts"] = int(status.get("restarts") or 0) + 1
            if decision.failures is not None:
                status["consecutiveFailures"] = decision.failures
            refresh_phase(obj)

        await self._write(workload, change)
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
            body["spec"] = {**body["spec"], "compose": {**compose, "auth": dict(secret.spec)}}  # not the cache's
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

        New is: a back-off to record, an error to clear, a different wait, or a spec
        generation not yet observed (once bound). A quiet decision ("container is running",
        "waiting for the scheduler", a grace wait) alone writes nothing: ``lastReconcile`` keeps
        the last action taken.
        """
        status, generation = workload.status, workload.metadata.generation
        last = status.get("lastReconcile") or {}
        until = to_iso(decision.backoff_until) if decision.backoff_until else None
        bound = bool(workload.spec.get("nodeName"))
        news = (until is not None and status.get("backoffUntil") != until) or last.get("result") == "error" or \
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
            if until:
                obj.status["backoffUntil"] = until
            refresh_phase(obj)

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
        """A fenced write of our own fields; until the cache shows it, reconcile decides on its result."""
        written = await self.store.modify(WORKLOAD.kind, workload.metadata.namespace, workload.metadata.name,
                                          change, fence=self.fence, base=workload)
        self.written.expect(workload.key, written, written.resource_version)

    # -- background: triggers and statistics --

    async def _watch_trigger(self) -> None:
        """A write to the trigger key (``POST /reconciliation/trigger``) starts a full pass."""
        etcd, backoff = self.store.etcd, Backoff(0.5, 10.0, clock=self.clock)
        while True:
            try:
                revision = await etcd.revision()
                async for _ in etcd.watch(TRIGGER_KEY, revision + 1):
                    backoff.reset()
                    self.log.info("full pass triggered")
                    self.full_pass()
            except (StoreUnavailable, Gone) as e:
                self.log.warning("trigger watch broke; retrying", error=str(e))
            except Exception:
                self.log.exception("trigger watch failed; retrying")
            await backoff.sleep()

    async def _persist_stats(self) -> None:
        etcd = self.store.etcd
        try:
            self.stats.load(await load_stats(etcd))
        except (StoreUnavailable, ValueError) as e:
            self.log.warning("could not load statistics", error=str(e))
        self.full_pass()
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: in 3.11 it can swallow a cancel
                async with asyncio.timeout(self.config.stats_seconds):
                    await self._pass_done.wait()
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


OWN_FIELDS = frozenset({"lastAction", "lastReconcile", "backoffUntil", "consecutiveFailures", "restarts",
                        "observedGeneration", "phase", "message"})  # ours, and what is derived from them


def _only_ours_changed(obj: Resource, old: Resource) -> bool:
    """Nothing but the reconciler's own status fields differ between ``old`` and ``obj``."""
    if obj.spec != old.spec or obj.metadata.finalizers != old.metadata.finalizers \
            or obj.metadata.deletionTimestamp != old.metadata.deletionTimestamp:
        return False
    keys = (obj.status.keys() | old.status.keys()) - OWN_FIELDS
    return all(obj.status.get(k) == old.status.get(k) for k in keys)
