"""The reconciler's decision table: (desired, actual, now) → one action, as a pure function.

Desired is the workload's spec (image, desiredState, restartPolicy, back-off), its finalizers
and deletion mark; actual is what the monitor recorded from the agent (``status.containerState``,
``specHash``, exit code and times) plus the reconciler's own memory (``status.lastAction``,
``consecutiveFailures``). Nothing here does I/O, so each row is tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persys.controllers.conditions import FINALIZER, get_condition, node_ready
from persys.resources.hashing import spec_hash
from persys.resources.model import Resource
from persys.runtime.clock import from_iso

NONE, WAIT, ADD_FINALIZER, RELEASE = "none", "wait", "add-finalizer", "release"
CREATE, RECREATE, START, RESTART, STOP, DELETE = "create", "recreate", "start", "restart", "stop", "delete"
AGENT_ACTIONS = (CREATE, RECREATE, START, RESTART, STOP, DELETE)
LAUNCHES = (CREATE, RECREATE, START, RESTART)

LIVE = ("running", "paused")
TRANSITIONAL = ("created", "restarting")


@dataclass(frozen=True)
class Policy:
    """The timings decisions depend on (ControllersConfig supplies them)."""

    grace: float = 30.0
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    node_lost_timeout: float = 300.0


@dataclass(frozen=True)
class Decision:
    """What to do now, why, and what to record."""

    action: str
    reason: str
    phase: str | None = None            # phase to record, None: leave it
    requeue_after: float | None = None  # look again after this many seconds
    failures: int | None = None         # consecutive failures to record with a restart
    backoff_until: float | None = None
    warning: bool = False               # the user should hear about this (Warning event)
    quiet: bool = False                 # a passing state not worth a write (lastReconcile keeps the last action)


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """The wait before restart number ``failures + 1``: none for the first (a one-off crash heals at
    once, as the kubelet does), then 10 s, 20 s, 40 s, … capped for a crash loop."""
    if failures <= 0:
        return 0.0
    return float(min(initial * 2 ** (failures - 1), maximum))


def _backoff_bounds(spec: dict[str, Any], policy: Policy) -> tuple[float, float]:
    override = spec.get("backoff") or {}
    initial = float(override.get("initialSeconds", policy.backoff_initial))
    maximum = float(override.get("maxSeconds", max(policy.backoff_max, initial)))
    return initial, maximum


def node_lost(node: Resource | None, now: float, policy: Policy) -> bool:
    """Gone for good: no Node object, or NotReady for longer than the node-lost timeout."""
    if node is None:
        return True
    if node_ready(node):
        return False
    cond = get_condition(node.status, "Ready") or {}
    since = from_iso(cond.get("lastTransitionTime")) or from_iso(node.status.get("lastHeartbeatTime"))
    return since is not None and now - since >= policy.node_lost_timeout


def decide(workload: Resource, node: Resource | None, now: float, policy: Policy) -> Decision:
    """The one action that brings ``workload`` closer to what its spec says."""
    meta, spec, status = workload.metadata, workload.spec, workload.status
    if meta.deletionTimestamp:
        return _deleting(workload, node, now, policy)
    if not spec.get("nodeName"):
        return Decision(NONE, "waiting for the scheduler", quiet=True)  # no container without a node
    if FINALIZER not in meta.finalizers:  # the scheduler adds it when binding; a pinned workload needs it here
        return Decision(ADD_FINALIZER, "guard the container with a finalizer before creating it", requeue_after=0)
    if not node_ready(node):
        return Decision(WAIT, f"node {spec['nodeName']} is not ready")
    state = _observed_state(workload)
    decision = _stopped(status, state) if spec.get("desiredState") == "Stopped" else \
        _running(workload, state, now, policy)
    return _with_grace(workload, decision, now, policy)


def _observed_state(workload: Resource) -> str | None:
    """The container state on the bound node; None when none was ever reported there."""
    status = workload.status
    if status.get("nodeName") and status["nodeName"] != workload.spec.get("nodeName"):
        return None
    state = status.get("containerState")
    return str(state) if state else None


def _deleting(workload: Resource, node: Resource | None, now: float, policy: Policy) -> Decision:
    meta, status = workload.metadata, workload.status
    if FINALIZER not in meta.finalizers:
        return Decision(NONE, "being deleted; not ours to hold")
    if not workload.spec.get("nodeName"):
        return Decision(RELEASE, "never scheduled: nothing to remove")
    state = _observed_state(workload)
    if state == "missing" or (state is None and not status.get("lastAction")):
        return Decision(RELEASE, "no container to remove")
    if not node_ready(node):
        if node_lost(node, now, policy):
            return Decision(RELEASE, f"node {workload.spec['nodeName']} is gone; its container may remain",
                            warning=True)
        return Decision(WAIT, f"node {workload.spec['nodeName']} is not ready; waiting to remove the container",
                        requeue_after=max(policy.node_lost_timeout / 10, 1.0))
    return Decision(DELETE, "being deleted: remove the container")


def _stopped(status: dict[str, Any], state: str | None) -> Decision:
    if state in LIVE or state in TRANSITIONAL:
        return Decision(STOP, f"desired Stopped, container is {state}")
    return Decision(NONE, "stopped as desired", phase="Stopped")


def _running(workload: Resource, state: str | None, now: float, policy: Policy) -> Decision:
    spec, status = workload.spec, workload.status
    if state is None:
        return Decision(CREATE, f"no container on node {spec['nodeName']} yet")
    if state in ("missing", "dead"):
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
        phase = "Failed" if code not in (0, None) else "Exited"
        return Decision(NONE, f"exited with {code}; restartPolicy {restart_policy}", phase=phase)
    started, finished = from_iso(status.get("startedAt")), from_iso(status.get("finishedAt"))
    failures = int(status.get("consecutiveFailures") or 0)
    initial, maximum = _backoff_bounds(spec, policy)
    if started is not None and finished is not None and finished - started >= policy.backoff_reset:
        failures = 0  # it ran long enough: this is a fresh failure, not a crash loop
    delay = backoff_delay(failures, initial, maximum)
    base = finished or from_iso(status.get("lastSeenTime")) or now
    ready = base + delay
    if now < ready:
        return Decision(WAIT, f"back-off {delay:g}s restarting failed container (exit code {code})",
                        phase="CrashLoopBackOff", requeue_after=ready - now, backoff_until=ready)
    return Decision(RESTART, f"exited with {code}; restartPolicy {restart_policy}", failures=failures + 1)


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
    if decision.action == RESTART and finished is not None and finished > acted:
        return decision  # a new exit after our action: a real crash, back-off already applied
    return Decision(WAIT, f"waiting for the agent to report {last.get('action')} ({remaining:.1f}s of grace left)",
                    requeue_after=remaining, quiet=True)
