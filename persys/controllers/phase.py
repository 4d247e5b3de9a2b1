"""A Workload's ``status.phase`` and ``status.message``, as one pure function of the workload.

Nobody decides a phase. Each controller owns its own fields and, in the same write, sets the
phase this function derives from the whole object:

- the scheduler owns ``spec.nodeName`` and the ``Scheduled`` condition;
- the status controller owns what the agent reports (``OBSERVED``, the ``Ready`` condition);
- the reconciler owns what it decided (``lastAction``, ``lastReconcile``, ``backoffUntil``,
  ``consecutiveFailures``, ``restarts``, ``observedGeneration``).

So the phase can never disagree with the fields it is read from, whoever wrote last. Nothing
here does I/O; ``tests/controllers/test_phase.py`` checks it row by row.
"""

from __future__ import annotations

from typing import Any

from persys.controllers.conditions import get_condition, set_condition
from persys.resources.model import Resource
from persys.resources.phase import LIVE, TRANSITIONAL, ContainerState, DesiredState, LaunchFailure, Phase
from persys.runtime.clock import from_iso

OBSERVED = ("containerState", "containerReason", "containerMessage", "containerID", "exitCode", "startedAt",
            "finishedAt", "specHash", "nodeName", "deployedRevision", "containerReady", "probeMessage")
"""The status fields the status controller copies from the agent's report (``nodeName``: where from)."""

LAUNCHES = ("create", "recreate", "start", "restart")

PULL_FAILURE = {LaunchFailure.IMAGE_PULL_FAILED: Phase.IMAGE_PULL_BACKOFF,
                LaunchFailure.CREATE_CONTAINER_ERROR: Phase.CREATE_CONTAINER_ERROR}


def observed_state(workload: Resource) -> ContainerState | None:
    """The container state reported from the bound node; None when that node never reported one."""
    status, node = workload.status, workload.spec.get("nodeName")
    if not node or status.get("nodeName") != node or not status.get("containerState"):
        return None
    try:
        return ContainerState(status["containerState"])
    except ValueError:
        return ContainerState.UNKNOWN


def launched_since_report(status: dict[str, Any]) -> bool:
    """The reconciler launched after the container last finished (or failed to launch)."""
    last = status.get("lastAction") or {}
    if last.get("action") not in LAUNCHES:
        return False
    acted, finished = from_iso(last.get("time")), from_iso(status.get("finishedAt"))
    return acted is not None and (finished is None or acted > finished)


def launch_failure(workload: Resource) -> LaunchFailure | None:
    """The agent's last launch failed, and nothing was launched since."""
    reason = workload.status.get("containerReason")
    if reason not in PULL_FAILURE or observed_state(workload) is None or launched_since_report(workload.status):
        return None
    return LaunchFailure(reason)


def workload_phase(workload: Resource) -> tuple[Phase, str]:
    """(phase, message) of ``workload``, from its spec and the fields each controller owns."""
    spec, status = workload.spec, workload.status
    if not spec.get("nodeName"):
        scheduled = get_condition(status, "Scheduled") or {}
        return Phase.PENDING, str(scheduled.get("message") or "") if scheduled.get("status") == "False" else ""
    stopped = spec.get("desiredState") == DesiredState.STOPPED
    state = observed_state(workload)
    failure = launch_failure(workload)
    if state == ContainerState.UNKNOWN:
        return Phase.UNKNOWN, f"node {spec['nodeName']} is not ready"
    if state in LIVE:
        return Phase.RUNNING, ""
    if state == ContainerState.PULLING:
        return Phase.PULLING, str(status.get("containerMessage") or "")
    if failure is not None and not stopped:
        return PULL_FAILURE[failure], str(status.get("containerMessage") or "")
    if state in TRANSITIONAL or (launched_since_report(status) and not stopped):
        return Phase.STARTING, ""
    if state == ContainerState.EXITED:
        return _exited(spec, status, stopped)
    if state == ContainerState.DEAD:
        return Phase.FAILED, str(status.get("containerMessage") or "container is dead")
    return (Phase.STOPPED if stopped else Phase.SCHEDULED), ""


def _exited(spec: dict[str, Any], status: dict[str, Any], stopped: bool) -> tuple[Phase, str]:
    code = status.get("exitCode")
    if stopped:
        return Phase.STOPPED, ""
    if status.get("backoffUntil"):
        return Phase.CRASH_LOOP_BACKOFF, str((status.get("lastReconcile") or {}).get("message") or "")
    if code not in (0, None) and spec.get("restartPolicy") == "Never":
        return Phase.FAILED, f"exited with code {code}"
    return Phase.EXITED, f"exited with code {code}"


def refresh_phase(obj: Resource) -> None:
    """Set ``status.phase`` and ``status.message`` from the rest of ``obj`` (every writer's last step)."""
    phase, message = workload_phase(obj)
    obj.status["phase"] = phase.value
    obj.status["message"] = message


def readiness(workload: Resource) -> tuple[bool, str, str]:
    """(ready, reason, message): running, and its readiness probes pass (no probe: running is enough;
    a startup probe that has not passed yet holds it back). The agent reports ``containerReady``."""
    state = observed_state(workload)
    if state not in LIVE:
        return False, "ContainerNotRunning", f"container is {state.value if state else 'not reported'}"
    probed = workload.status.get("containerReady")
    if probed is False:
        return False, "ContainerNotReady", str(workload.status.get("probeMessage") or "probes have not passed")
    if probed is True:
        return True, "ProbesPassed", "container is running and its probes pass"
    return True, "ContainerRunning", "container is running"


def set_ready(obj: Resource, now: str) -> None:
    """The ``Ready`` condition from the observed container state and probes (the status controller's)."""
    ready, reason, message = readiness(obj)
    set_condition(obj.status, "Ready", "True" if ready else "False", reason, message, now)
