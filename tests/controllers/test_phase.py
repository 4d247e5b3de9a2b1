"""A Workload's phase and message as one pure function of its fields, row by row."""

from __future__ import annotations

from typing import Any

import pytest

from persys.controllers.phase import refresh_phase, workload_phase
from persys.resources import REGISTRY, Resource
from persys.resources.phase import ContainerState, Phase
from persys.runtime.clock import to_iso

NOW = 1_800_000_000.0


def wl(*, state: str | None = None, bound: bool = True, spec: dict[str, Any] | None = None,
       **status: Any) -> Resource:
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": "w"},
                          "spec": {"image": "persys/busybox:local", **(spec or {})}})
    if bound:
        obj.spec["nodeName"] = "n1"
    if state is not None:
        status = {"containerState": state, "nodeName": "n1", **status}
    obj.status = status
    return obj


def launch(action: str, at: float) -> dict[str, Any]:
    return {"action": action, "time": to_iso(at), "generation": 1}


UNSCHEDULABLE = [{"type": "Scheduled", "status": "False", "message": "0/1 nodes available: 1 not ready"}]

ROWS = [
    # (name, workload, phase, message or None when any)
    ("not bound", wl(bound=False), Phase.PENDING, ""),
    ("not bound, unschedulable", wl(bound=False, conditions=UNSCHEDULABLE), Phase.PENDING,
     "0/1 nodes available: 1 not ready"),
    ("bound, nothing reported", wl(), Phase.SCHEDULED, ""),
    ("bound, reported missing", wl(state="missing"), Phase.SCHEDULED, ""),
    ("launched, not reported yet", wl(lastAction=launch("create", NOW)), Phase.STARTING, ""),
    ("launched, old report still missing", wl(state="missing", lastAction=launch("create", NOW)), Phase.STARTING, ""),
    ("pulling", wl(state="pulling", containerMessage="pulling image x: 3/10 MB"), Phase.PULLING,
     "pulling image x: 3/10 MB"),
    ("pull failed", wl(state="missing", containerReason="ImagePullFailed", containerMessage="connection refused",
                       finishedAt=to_iso(NOW), lastAction=launch("create", NOW - 1)),
     Phase.IMAGE_PULL_BACKOFF, "connection refused"),
    ("pull failed, relaunched since", wl(state="missing", containerReason="ImagePullFailed",
                                         finishedAt=to_iso(NOW), lastAction=launch("recreate", NOW + 10)),
     Phase.STARTING, ""),
    ("create failed", wl(state="missing", containerReason="CreateContainerError", containerMessage="no such network",
                         finishedAt=to_iso(NOW)), Phase.CREATE_CONTAINER_ERROR, "no such network"),
    ("launch failed but stopped is wanted", wl(state="missing", containerReason="CreateContainerError",
                                               spec={"desiredState": "Stopped"}), Phase.STOPPED, ""),
    ("created", wl(state="created"), Phase.STARTING, ""),
    ("restarting", wl(state="restarting"), Phase.STARTING, ""),
    ("running", wl(state="running"), Phase.RUNNING, ""),
    ("paused", wl(state="paused"), Phase.RUNNING, ""),
    ("running, stop wanted but not done yet", wl(state="running", spec={"desiredState": "Stopped"}), Phase.RUNNING,
     ""),
    ("exited 0", wl(state="exited", exitCode=0, finishedAt=to_iso(NOW)), Phase.EXITED, "exited with code 0"),
    ("exited 1, will restart", wl(state="exited", exitCode=1, finishedAt=to_iso(NOW)), Phase.EXITED,
     "exited with code 1"),
    ("exited 1, restartPolicy Never", wl(state="exited", exitCode=1, spec={"restartPolicy": "Never"}),
     Phase.FAILED, "exited with code 1"),
    ("exited, in back-off", wl(state="exited", exitCode=1, backoffUntil=to_iso(NOW + 10),
                               lastReconcile={"message": "back-off 10s: exited with 1"}),
     Phase.CRASH_LOOP_BACKOFF, "back-off 10s: exited with 1"),
    ("exited, restarted since", wl(state="exited", exitCode=1, finishedAt=to_iso(NOW),
                                   lastAction=launch("restart", NOW + 1)), Phase.STARTING, ""),
    ("exited before the last restart, in back-off is not", wl(state="exited", exitCode=1, finishedAt=to_iso(NOW + 2),
                                                              lastAction=launch("restart", NOW + 1)),
     Phase.EXITED, "exited with code 1"),
    ("stopped as wanted", wl(state="exited", exitCode=137, spec={"desiredState": "Stopped"},
                             lastAction=launch("stop", NOW)), Phase.STOPPED, ""),
    ("stopped, never created", wl(spec={"desiredState": "Stopped"}), Phase.STOPPED, ""),
    ("dead", wl(state="dead"), Phase.FAILED, "container is dead"),
    ("node not ready", wl(state="unknown"), Phase.UNKNOWN, "node n1 is not ready"),
    ("report from the previous node", wl(state="running", nodeName="n0"), Phase.SCHEDULED, ""),
    ("a state no agent should send", wl(state="frozen"), Phase.UNKNOWN, "node n1 is not ready"),
]


@pytest.mark.parametrize("name, workload, phase, message", ROWS, ids=[r[0] for r in ROWS])
def test_phase_table(name: str, workload: Resource, phase: Phase, message: str) -> None:
    assert workload_phase(workload) == (phase, message)


def test_refresh_writes_phase_and_message_as_json_strings() -> None:
    obj = wl(state="missing", containerReason="ImagePullFailed", containerMessage="refused", finishedAt=to_iso(NOW))
    refresh_phase(obj)
    assert obj.status["phase"] == "ImagePullBackOff" and type(obj.status["phase"]) is str
    assert obj.status["message"] == "refused"


def test_every_phase_and_container_state_is_allowed_by_the_workload_schema() -> None:
    kind = REGISTRY.get("Workload")
    for phase in Phase:
        assert kind.parse_status({"phase": phase.value})["phase"] == phase.value
    for state in ContainerState:
        assert kind.parse_status({"containerState": state.value})["containerState"] == state.value
