"""The prober: runs every running container's probes and acts on their verdicts.

One worker per probed container run (a ``Target``: uid, compose service, container id and start
time), started when the runtime reports the workload running and cancelled when it stops; a
restarted container is a new run with fresh verdicts. A worker runs the startup probe until it
passes, then liveness and readiness side by side (``probes.Verdict`` decides).

- Readiness (and a startup probe not yet passed) goes into ``ProbeResults``, which the runtime
  reads into every report (``containerReady``, ``probeMessage``); a change is published at once.
  A container with a readiness or startup probe is not ready until its probes say so.
- A liveness (or startup) probe that fails ``failureThreshold`` times in a row stops the
  container through the executor, so the stop is serialised with every other operation on the
  workload, with its last output (≤ 1 kB) as the report's ``Unhealthy`` reason. The reconciler
  then restarts it as it restarts any exit: counted, with back-off.

The prober is a supervised task of the agent (``agent-<node>/prober``). A worker that crashes is
logged with its traceback, counted in ``persys_agent_probe_crashes_total`` and started again after
a back-off; the prober never loses a container silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import aiohttp
from prometheus_client import Counter

from persys.agentd.events import EventHub
from persys.agentd.executor import Executor
from persys.agentd.probes import Outcome, Verdict, check, clip
from persys.agentd.runtime import WorkloadState
from persys.errors import NotFound, PersysError
from persys.observability.logging import get_logger
from persys.resources.probes import Probe
from persys.runtime.backoff import delay_for

PROBES = Counter("persys_agent_probes_total", "Probe runs by probe kind and result", ["probe", "result"])
CRASHES = Counter("persys_agent_probe_crashes_total", "Probe workers that died with an exception")
RESYNC_SECONDS = 30.0  # a safety net: state events start and stop workers as containers change

log = get_logger("agent")


@dataclass(frozen=True)
class Target:
    """One run of one probed container: a workload's container, or one service of a compose app."""

    uid: str
    service: str  # "" for a container workload
    container_id: str
    started_at: str
    probes: dict[str, Probe] = field(compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.uid, self.service, self.container_id, self.started_at

    @property
    def run_id(self) -> str:
        return f"{self.container_id}@{self.started_at}"

    def named(self, text: str) -> str:
        """``text`` about this target, naming the service of a compose app."""
        return f"service {self.service}: {text}" if self.service else text


def gated(probes: dict[str, Any]) -> str:
    """What a container waits for before it is ready ("" when its probes hold nothing back)."""
    if "startupProbe" in probes:
        return "Startup probe has not passed yet"
    return "Readiness probe has not passed yet" if "readinessProbe" in probes else ""


class ProbeResults:
    """What the probes last said about readiness, per (uid, service) and container run."""

    def __init__(self) -> None:
        self._results: dict[tuple[str, str], tuple[str, bool, str]] = {}

    def set(self, target: Target, ready: bool, message: str) -> bool:
        """Record a verdict; True when it changed what reports say."""
        key, value = (target.uid, target.service), (target.run_id, ready, message)
        changed = self._results.get(key) != value
        self._results[key] = value
        return changed

    def forget(self, uid: str) -> None:
        for key in [k for k in self._results if k[0] == uid]:
            del self._results[key]

    def judge(self, state: WorkloadState, runs: list[tuple[str, str, str]]) -> WorkloadState:
        """``state`` with ``containerReady`` and ``probeMessage`` from the runs (service, run id, what it
        waits for: ``gated``) of its running containers: None when no probe gates readiness, else whether
        all pass."""
        if state.state != "running" or not any(g for _, _, g in runs):
            return state
        waiting = []
        for service, run_id, awaited in runs:
            if not awaited:
                continue
            found = self._results.get((state.uid, service))
            if found is None or found[0] != run_id:
                waiting.append(f"service {service}: {awaited}" if service else awaited)
            elif not found[1]:
                waiting.append(found[2])
        state.containerReady = not waiting
        state.probeMessage = "; ".join(waiting)
        return state


@runtime_checkable
class ProbeHost(Protocol):
    """What a runtime offers the prober."""

    probe_results: ProbeResults

    async def probe_targets(self, uid: str) -> list[Target]:
        """The running, probed containers of ``uid`` (none when it is not running here)."""

    async def exec_in(self, container_id: str, command: tuple[str, ...], timeout: float) -> tuple[int, str]:
        """Run ``command`` in a container: (exit code, output)."""

    async def stop_unhealthy(self, target: Target, message: str, grace: float | None) -> None:
        """Stop the target's container (if it is still that run) with ``message`` as its Unhealthy reason."""

    async def get(self, uid: str) -> WorkloadState: ...

    async def list(self) -> list[WorkloadState]: ...


class Prober:
    """Supervises one worker per probed container run of one node."""

    def __init__(self, node: str, host: ProbeHost, hub: EventHub, executor: Executor) -> None:
        self.node, self.host, self.hub, self.executor = node, host, hub, executor
        self.results = host.probe_results
        self._workers: dict[tuple[str, str, str, str], asyncio.Task[None]] = {}
        self._crashes: dict[tuple[str, str, str, str], int] = {}  # in a row, for the back-off
        self._crashed: set[tuple[str, str, str, str]] = set()  # to start again (a worker that gave up stays done)
        self._due: dict[str, float] = {}  # uid → when to look at it again (a crashed worker)
        self._http: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[dict[str, Any] | None] | None = None  # the state events; a crash pokes it

    def workers(self) -> list[tuple[str, str, str, str]]:
        """The keys of the workers running now."""
        return [key for key, task in self._workers.items() if not task.done()]

    async def run(self) -> None:
        """Follow the node's state events until the hub closes; cancel every worker on the way out."""
        try:
            async with aiohttp.ClientSession() as self._http, asyncio.TaskGroup() as group:
                with self.hub.subscription() as queue:
                    self._queue = queue
                    await self._resync(group)
                    next_resync = time.monotonic() + RESYNC_SECONDS
                    while True:
                        wake = min([next_resync, *self._due.values()])
                        event: dict[str, Any] | None = {}
                        with contextlib.suppress(TimeoutError):  # not wait_for: in a loop it can swallow a cancel
                            async with asyncio.timeout(max(wake - time.monotonic(), 0.0)):
                                event = await queue.get()
                        if event is None:
                            break  # the agent is shutting down
                        if event.get("uid"):
                            await self._refresh(group, str(event["uid"]))
                        now = time.monotonic()
                        for uid in [u for u, due in self._due.items() if due <= now]:
                            del self._due[uid]
                            await self._refresh(group, uid)
                        if now >= next_resync:
                            await self._resync(group)
                            next_resync = now + RESYNC_SECONDS
                    for task in self._workers.values():
                        task.cancel()
        finally:
            self._workers.clear()
            self._http = self._queue = None

    async def _resync(self, group: asyncio.TaskGroup) -> None:
        try:
            states = await self.host.list()
        except PersysError as e:
            log.warning("prober cannot list workloads", node=self.node, error=e.message)
            return
        known = {(key[0], key[2], key[3]) for key in self.workers()}
        # a running container whose worker runs already needs no second inspect (compose apps always get one:
        # their state names one container of several)
        running = {s.uid for s in states if s.state == "running" and (s.uid, s.containerID, s.startedAt) not in known}
        gone = {key[0] for key in self._workers} - {s.uid for s in states if s.state == "running"}
        for uid in running | gone:
            await self._refresh(group, uid)

    async def _refresh(self, group: asyncio.TaskGroup, uid: str) -> None:
        """Make the workers of ``uid`` match its running, probed containers."""
        try:
            targets = await self.host.probe_targets(uid)
        except NotFound:
            targets = []
        except PersysError as e:
            log.warning("prober cannot inspect workload", node=self.node, uid=uid, error=e.message)
            return
        wanted = {t.key: t for t in targets}
        for key in [k for k in self._workers if k[0] == uid and k not in wanted]:
            self._workers.pop(key).cancel()
            self._crashes.pop(key, None)
            self._crashed.discard(key)
        for key, target in wanted.items():
            task = self._workers.get(key)
            if task is None or (task.done() and key in self._crashed):
                self._crashed.discard(key)
                self._workers[key] = group.create_task(self._worker(target), name=f"probe-{uid}-{target.service}")
        if not targets:
            self.results.forget(uid)

    async def _worker(self, target: Target) -> None:
        try:
            await self._lifecycle(target)
        except Exception:  # a bug must cost one container's probes for a moment, never the prober
            crashes = self._crashes.get(target.key, 0) + 1
            self._crashes[target.key] = crashes
            self._crashed.add(target.key)
            CRASHES.inc()
            delay = delay_for(crashes, 1.0, 30.0)
            log.exception("probe worker crashed; restarting", node=self.node, uid=target.uid,
                          service=target.service, crashes=crashes, retry_in=delay)
            self._due[target.uid] = time.monotonic() + delay
            if self._queue is not None:
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait({})  # wake the loop: it sleeps until the next due time it knew of

    async def _lifecycle(self, target: Target) -> None:
        startup = target.probes.get("startupProbe")
        liveness = target.probes.get("livenessProbe")
        readiness = target.probes.get("readinessProbe")
        if startup is not None:
            await self._publish(target, False, target.named("Startup probe has not passed yet"))
            verdict, outcome = await self._until(target, startup, lambda v: v.passing or v.gave_up)
            if verdict.gave_up:
                await self._unhealthy(target, startup, outcome)
                return
        if readiness is None:
            await self._publish(target, True, "")
        else:
            await self._publish(target, False, target.named("Readiness probe has not passed yet"))
        async with asyncio.TaskGroup() as group:
            if liveness is not None:
                group.create_task(self._liveness(target, liveness))
            if readiness is not None:
                group.create_task(self._readiness(target, readiness))

    async def _until(self, target: Target, probe: Probe, done: Callable[[Verdict], bool],
                     each: Callable[[Verdict, Outcome], Awaitable[None]] | None = None) -> tuple[Verdict, Outcome]:
        """Run ``probe`` every period (after its initial delay) until ``done(verdict)``."""
        assert self._http is not None
        verdict = Verdict(probe)
        await asyncio.sleep(probe.initial_delay)
        while True:
            started = time.monotonic()
            outcome = await check(probe, self._http, self._exec_in(target))
            PROBES.labels(probe.kind, "success" if outcome.ok else "failure").inc()
            verdict.record(outcome.ok)
            if each is not None:
                await each(verdict, outcome)
            if done(verdict):
                return verdict, outcome
            await asyncio.sleep(max(probe.period - (time.monotonic() - started), 0.0))

    def _exec_in(self, target: Target) -> Callable[[tuple[str, ...], float], Awaitable[tuple[int, str]]]:
        async def run(command: tuple[str, ...], timeout: float) -> tuple[int, str]:
            return await self.host.exec_in(target.container_id, command, timeout)
        return run

    async def _liveness(self, target: Target, probe: Probe) -> None:
        verdict, outcome = await self._until(target, probe, lambda v: v.gave_up)
        await self._unhealthy(target, probe, outcome)

    async def _readiness(self, target: Target, probe: Probe) -> None:
        async def each(verdict: Verdict, outcome: Outcome) -> None:
            message = "" if verdict.passing else target.named(f"{probe.label} failed: {outcome.output}")
            if verdict.passing or verdict.failures >= probe.failure_threshold:
                await self._publish(target, verdict.passing, message)
        await self._until(target, probe, lambda v: False, each)

    async def _unhealthy(self, target: Target, probe: Probe, outcome: Outcome) -> None:
        message = clip(target.named(f"{probe.label} failed {probe.failure_threshold} times in a row: "
                                    f"{outcome.output}"))
        log.warning("container unhealthy; stopping it", node=self.node, uid=target.uid, service=target.service,
                    message=message)
        await self._publish(target, False, message)
        self.executor.submit(target.uid, "unhealthy-stop",
                             lambda: self.host.stop_unhealthy(target, message, probe.grace))

    async def _publish(self, target: Target, ready: bool, message: str) -> None:
        """Record a readiness verdict; a change is published with the workload's state at once."""
        if not self.results.set(target, ready, message):
            return
        try:
            self.hub.publish(await self.host.get(target.uid))
        except PersysError as e:
            log.info("cannot report a probe verdict now", node=self.node, uid=target.uid, error=e.message)
