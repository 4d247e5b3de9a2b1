"""The reconciler's decision table: (desired, actual, now) → one action, as a pure function.

Desired is the workload's spec (image, desiredState, restartPolicy, back-off), its finalizers
and deletion mark; actual is what the status controller recorded from the agent
(``status.containerState``, ``containerReason``, ``specHash``, exit code and times) plus the
reconciler's own memory (``status.lastAction``, ``consecutiveFailures``). A launch that failed
(image pull, container create) backs off like a crash. Decisions never set a phase: the phase is
derived (``phase.py``). Nothing here does I/O, so each row is tested directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from persys.controllers.conditions import FINALIZER, node_lost_in, node_ready
from persys.controllers.phase import launch_failure, observed_state
from persys.resources.hashing import spec_hash
from persys.resources.model import Resource
from persys.resources.phase import LIVE, TRANSITIONAL, ContainerState, DesiredState
from persys.runtime.backoff import delay_for
from persys.runtime.clock import from_iso

NONE, WAIT, ADD_FINALIZER, RELEASE = "none", "wait", "add-finalizer", "release"
CREATE, RECREATE, START, RESTART, STOP, DELETE = "create", "recreate", "start", "restart", "stop", "delete"
AGENT_ACTIONS = (CREATE, RECREATE, START, RESTART, STOP, DELETE)
LAUNCHES = (CREATE, RECREATE, START, RESTART)


@dataclass(frozen=True)
class Policy:
    """The timings decisions depend on (ControllersConfig supplies them)."""

    grace: float = 30.0
    launch_check: float = 5.0  # within the grace, how often to ask whether the agent still knows a launch
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    node_lost_timeout: float = 300.0


@dataclass(frozen=True)
class Decision:
    """What to do now, why, and what to record."""

    action: str
    reason: str
    requeue_after: float | None = None  # look again after this many seconds
    failures: int | None = None         # consecutive failures to record with a restart
    backoff_until: float | None = None
    warning: bool = False               # the user should hear about this (Warning event)
    quiet: bool = False                 # a passing state not worth a write (lastReconcile keeps the last action)
    if_forgotten: str | None = None     # a wait for a launch: act so at once if the agent no longer knows it


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """The wait before restart number ``failures + 1``: none for the first (a one-off crash heals at
    once, as the kubelet does), then 10 s, 20 s, 40 s, … capped for a crash loop."""
    return delay_for(failures, initial, maximum)


def _backoff_bounds(spec: dict[str, Any], policy: Policy) -> tuple[float, float]:
    override = spec.get("backoff") or {}
    initial = _finite(override.get("initialSeconds"), policy.backoff_initial)
    maximum = _finite(override.get("maxSeconds"), max(policy.backoff_max, initial))
    return initial, max(maximum, initial)


MAX_BACKOFF = 86_400.0  # a day; the API refuses more, older data may still hold it


def _finite(value: Any, default: float) -> float:
    """A positive number of seconds from a spec, at most a day; the default for anything else (NaN, inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return min(number, MAX_BACKOFF) if math.isfinite(number) and number > 0 else default


def node_lost(node: Resource | None, now: float, policy: Policy) -> bool:
    """Gone for good: no Node object, or NotReady for longer than the node-lost timeout."""
    lost_in = node_lost_in(node, now, policy.node_lost_timeout)
    return lost_in is not None and lost_in <= 0


def decide(workload: Resource, node: Resource | None, now: float, policy: Policy) -> Decision:
    """The one action that brings ``workload`` closer to what its spec says."""
    meta, spec = workload.metadata, workload.spec
    if meta.deletionTimestamp:
        return _deleting(workload, node, now, policy)
    if not spec.get("nodeName"):
        return Decision(NONE, "waiting for the scheduler", quiet=True)  # no container without a node
    if FINALIZER not in meta.finalizers:  # the scheduler adds it when binding; a pinned workload needs it here
        return Decision(ADD_FINALIZER, "guard the container with a finalizer before creating it", requeue_after=0)
    if not node_ready(node):
        return Decision(WAIT, f"node {spec['nodeName']} is not ready")
    state = observed_state(workload)
    if state == ContainerState.UNKNOWN:
        return Decision(WAIT, f"waiting for node {spec['nodeName']} to report")
    decision = _stopped(state) if spec.get("desiredState") == DesiredState.STOPPED else \
        _running(workload, state, now, policy)
    return _with_grace(workload, decision, now, policy)


def _deleting(workload: Resource, node: Resource | None, now: float, policy: Policy) -> Decision:
    meta, status = workload.metadata, workload.status
    if FINALIZER not in meta.finalizers:
        return Decision(NONE, "being deleted; not ours to hold")
    if not workload.spec.get("nodeName"):
        return Decision(RELEASE, "never scheduled: nothing to remove")
    state = observed_state(workload)
    if state == ContainerState.MISSING or (state is None and not status.get("lastAction")):
        return Decision(RELEASE, "no container to remove")
    if not node_ready(node):
        if node_lost(node, now, policy):
            return Decision(RELEASE, f"node {workload.spec['nodeName']} is gone; its container may remain",
                            warning=True)
        return Decision(WAIT, f"node {workload.spec['nodeName']} is not ready; waiting to remove the container",
                        requeue_after=max(policy.node_lost_timeout / 10, 1.0))
    return Decision(DELETE, "being deleted: remove the container")


def _stopped(state: ContainerState | None) -> Decision:
    if state in LIVE or state in TRANSITIONAL:
        return Decision(STOP, f"desired Stopped, container is {state}")
    return Decision(NONE, "stopped as desired")


def _running(workload: Resource, state: ContainerState | None, now: float, policy: Policy) -> Decision:
    spec, status = workload.spec, workload.status
    if state == ContainerState.PULLING:
        return Decision(NONE, "the agent is pulling the image", quiet=True)
    failure = launch_failure(workload)
    if failure is not None:
        if (status.get("lastAction") or {}).get("generation") != workload.metadata.generation:
            return Decision(RECREATE, f"spec changed after a failed launch ({failure.value})")
        return _retry(workload, f"launch failed ({failure.value}): {status.get('containerMessage') or ''}".rstrip(),
                      RECREATE, now, policy)
    if state is None:
        return Decision(CREATE, f"no container on node {spec['nodeName']} yet")
    if state in (ContainerState.MISSING, ContainerState.DEAD):
        return Decision(RECREATE, f"container is {state}")
    if status.get("specHash") and status["specHash"] != spec_hash(spec):
        return Decision(RECREATE, "spec changed")
    if state in LIVE:
        return Decision(NONE, f"container is {state}", quiet=True)
    if state in TRANSITIONAL:
        return Decision(START, f"container is still {state}")
    return _exited(workload, now, policy)


def _exited(workload: Resource, now: float, policy: Policy) -> Decision:
    spec, status = workload.spec, workload.status
    code = status.get("exitCode")
    last = (status.get("lastAction") or {}).get("action")
    if last == STOP:
        return Decision(START, "desired Running again after a stop")
    restart_policy = spec.get("restartPolicy", "Always")
    if restart_policy == "Never" or (restart_policy == "OnFailure" and code == 0):
        return Decision(NONE, f"exited with {code}; restartPolicy {restart_policy}")
    return _retry(workload, f"exited with {code}; restartPolicy {restart_policy}", RESTART, now, policy)


def _retry(workload: Resource, why: str, action: str, now: float, policy: Policy) -> Decision:
    """Act again after the back-off for one more consecutive failure (the first retry is at once)."""
    spec, status = workload.spec, workload.status
    started, finished = from_iso(status.get("startedAt")), from_iso(status.get("finishedAt"))
    failures = int(status.get("consecutiveFailures") or 0)
    initial, maximum = _backoff_bounds(spec, policy)
    if action == RESTART and started is not None and finished is not None \
            and finished - started >= policy.backoff_reset:
        failures = 0  # it ran long enough: this is a fresh failure, not a crash loop
    delay = backoff_delay(failures, initial, maximum)
    base = finished or from_iso(status.get("lastSeenTime")) or now
    ready = base + delay
    if now < ready:
        return Decision(WAIT, f"back-off {delay:g}s: {why}", requeue_after=ready - now, backoff_until=ready)
    return Decision(action, why, failures=failures + 1)


def _with_grace(workload: Resource, decision: Decision, now: float, policy: Policy) -> Decision:
    """Within the grace period after an action, wait for the agent to report instead of acting again."""
    if decision.action not in AGENT_ACTIONS:
        return decision
    last = workload.status.get("lastAction") or {}
    acted = from_iso(last.get("time"))
    if acted is None or last.get("generation") != workload.metadata.generation:
        return decision
    remaining = acted + policy.grace - now
    if remaining <= 0:
        return decision
    finished = from_iso(workload.status.get("finishedAt"))
    if decision.action in (RESTART, RECREATE) and finished is not None and finished > acted:
        return decision  # a new exit or failed launch after our action: back-off already applied
    seen = from_iso(workload.status.get("lastSeenTime"))
    if decision.action in (CREATE, RECREATE) and observed_state(workload) == ContainerState.MISSING \
            and seen is not None and seen > acted:
        return decision  # the agent said since that it has no container (it restarted): whether our launch
        # still runs is for its operation to tell (the reconciler asks before it launches again)
    if decision.action in (CREATE, RECREATE):  # a launch not reported yet: an agent restarted meanwhile forgot it
        return Decision(WAIT, f"waiting for the agent to report {last.get('action')} "
                              f"({remaining:.1f}s of grace left)", requeue_after=min(remaining, policy.launch_check),
                        quiet=True, if_forgotten=decision.action)
    return Decision(WAIT, f"waiting for the agent to report {last.get('action')} ({remaining:.1f}s of grace left)",
                    requeue_after=remaining, quiet=True)
