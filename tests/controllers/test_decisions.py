"""The reconciler's decision table, row by row, and restart back-off on a controllable clock."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from persys.controllers import decisions as d
from persys.controllers.conditions import FINALIZER
from persys.resources import REGISTRY, Resource
from persys.resources.hashing import spec_hash
from persys.runtime.clock import FakeClock, to_iso

NOW = 1_800_000_000.0
POLICY = d.Policy(grace=30, backoff_initial=10, backoff_max=300, backoff_reset=600, node_lost_timeout=300)


def node(ready: bool = True, since: float = NOW - 1000) -> Resource:
    obj = REGISTRY.parse({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"address": "127.0.0.1:1"}})
    obj.status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                  "lastTransitionTime": to_iso(since)}], "lastHeartbeatTime": to_iso(since)}
    return obj


def wl(*, state: str | None = None, bound: bool = True, finalizer: bool = True, deleting: bool = False,
       spec: dict[str, Any] | None = None, **status: Any) -> Resource:
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": "w"},
                          "spec": {"image": "persys/busybox:local", **(spec or {})}})
    obj.metadata.uid, obj.metadata.generation = "uid-1", 1
    if bound:
        obj.spec["nodeName"] = "n1"
    if finalizer:
        obj.metadata.finalizers = [FINALIZER]
    if deleting:
        obj.metadata.deletionTimestamp = to_iso(NOW)
    if state is not None:
        status = {"containerState": state, "nodeName": "n1", "containerID": "c1",
                  "specHash": spec_hash(obj.spec), **status}
    obj.status = status
    return obj


def stored_before_validation(obj: Resource, **spec: Any) -> Resource:
    """A workload with spec values the API now refuses, as older data may still hold them."""
    obj.spec.update(spec)
    return obj


def last_action(action: str, at: float, generation: int = 1) -> dict[str, Any]:
    return {"action": action, "time": to_iso(at), "generation": generation, "specHash": "", "operation": "op-1"}


ROWS = [
    # (name, workload, node, expected action)
    ("deleting, finalizer not ours", wl(deleting=True, finalizer=False, state="running"), node(), d.NONE),
    ("deleting, never scheduled", wl(deleting=True, bound=False), None, d.RELEASE),
    ("deleting, container already gone", wl(deleting=True, state="missing"), node(), d.RELEASE),
    ("deleting, nothing ever launched", wl(deleting=True), node(), d.RELEASE),
    ("deleting, container on a ready node", wl(deleting=True, state="running"), node(), d.DELETE),
    ("deleting, node briefly not ready", wl(deleting=True, state="running"), node(False, NOW - 10), d.WAIT),
    ("deleting, node lost for good", wl(deleting=True, state="running"), node(False, NOW - 301), d.RELEASE),
    ("deleting, node object gone", wl(deleting=True, state="running"), None, d.RELEASE),
    ("bound without finalizer: add it first", wl(finalizer=False), node(), d.ADD_FINALIZER),
    ("not scheduled yet", wl(bound=False), None, d.NONE),
    ("not scheduled yet, no finalizer needed", wl(bound=False, finalizer=False), None, d.NONE),
    ("node not ready", wl(state="running"), node(False, NOW - 10), d.WAIT),
    ("desired Stopped, running", wl(state="running", spec={"desiredState": "Stopped"}), node(), d.STOP),
    ("desired Stopped, exited", wl(state="exited", spec={"desiredState": "Stopped"}, exitCode=0), node(), d.NONE),
    ("desired Stopped, never created", wl(spec={"desiredState": "Stopped"}), node(), d.NONE),
    ("no container yet", wl(), node(), d.CREATE),
    ("container gone", wl(state="missing"), node(), d.RECREATE),
    ("container dead", wl(state="dead"), node(), d.RECREATE),
    ("spec changed", wl(state="running", specHash="0123456789abcdef"), node(), d.RECREATE),
    ("running as desired", wl(state="running"), node(), d.NONE),
    ("stuck in created", wl(state="created"), node(), d.START),
    ("stopped by us, wanted again", wl(state="exited", exitCode=0, lastAction=last_action("stop", NOW - 100)),
     node(), d.START),
    ("exited, restartPolicy Never", wl(state="exited", exitCode=3, spec={"restartPolicy": "Never"}), node(),
     d.NONE),
    ("succeeded, restartPolicy OnFailure", wl(state="exited", exitCode=0, spec={"restartPolicy": "OnFailure"}),
     node(), d.NONE),
    ("failed, restartPolicy OnFailure, back-off over", wl(state="exited", exitCode=1, finishedAt=to_iso(NOW - 11),
     consecutiveFailures=1, spec={"restartPolicy": "OnFailure"}), node(), d.RESTART),
    ("first crash restarts at once", wl(state="exited", exitCode=137, finishedAt=to_iso(NOW - 0.1)), node(),
     d.RESTART),
    ("crashed again, in back-off", wl(state="exited", exitCode=1, finishedAt=to_iso(NOW - 5), consecutiveFailures=1),
     node(), d.WAIT),
    ("crashed again, back-off over", wl(state="exited", exitCode=1, finishedAt=to_iso(NOW - 10),
                                        consecutiveFailures=1), node(), d.RESTART),
    ("within grace after create", wl(state="missing", lastAction=last_action("create", NOW - 5)), node(), d.WAIT),
    ("grace over, agent never confirmed", wl(state="missing", lastAction=last_action("create", NOW - 31)), node(),
     d.RECREATE),
    ("within grace, the agent said since that it has no container", wl(
        state="missing", lastSeenTime=to_iso(NOW - 2), lastAction=last_action("create", NOW - 5)), node(), d.RECREATE),
    ("within grace, missing said before the launch", wl(
        state="missing", lastSeenTime=to_iso(NOW - 8), lastAction=last_action("create", NOW - 5)), node(), d.WAIT),
    ("spec changed during grace", wl(state="running", specHash="0123456789abcdef",
                                     lastAction=last_action("create", NOW - 5, generation=0)), node(),
     d.RECREATE),
    ("container reported on the old node", wl(state="running", nodeName="n0"), node(), d.CREATE),
    ("node's report is stale (node was not ready)", wl(state="unknown"), node(), d.WAIT),
    ("image being pulled", wl(state="pulling", containerReason="Pulling"), node(), d.NONE),
    ("image pull failed, first retry at once", wl(state="missing", containerReason="ImagePullFailed",
     finishedAt=to_iso(NOW - 0.1), lastAction=last_action("create", NOW - 1)), node(), d.RECREATE),
    ("image pull failed again, in back-off", wl(state="missing", containerReason="ImagePullFailed",
     finishedAt=to_iso(NOW - 2), consecutiveFailures=1, lastAction=last_action("recreate", NOW - 3)), node(),
     d.WAIT),
    ("image pull failed, back-off over", wl(state="missing", containerReason="ImagePullFailed",
     finishedAt=to_iso(NOW - 11), consecutiveFailures=1, lastAction=last_action("recreate", NOW - 12)), node(),
     d.RECREATE),
    ("launch failed, spec changed since: at once", wl(state="missing", containerReason="CreateContainerError",
     finishedAt=to_iso(NOW - 2), consecutiveFailures=3, lastAction=last_action("recreate", NOW - 3, generation=0)),
     node(), d.RECREATE),
    ("crash loop with a non-finite back-off in old data", stored_before_validation(
        wl(state="exited", exitCode=1, finishedAt=to_iso(NOW - 5), consecutiveFailures=1),
        backoff={"initialSeconds": float("inf"), "maxSeconds": float("nan")}), node(), d.WAIT),
]


@pytest.mark.parametrize("name, workload, node_obj, action", ROWS, ids=[r[0] for r in ROWS])
def test_decision_table(name: str, workload: Resource, node_obj: Resource | None, action: str) -> None:
    decision = d.decide(workload, node_obj, NOW, POLICY)
    assert decision.action == action, decision.reason


def test_passing_states_are_quiet_and_the_rest_are_recorded() -> None:
    """Quiet decisions are not written: lastReconcile keeps the last action taken."""
    quiet = [d.decide(wl(bound=False), None, NOW, POLICY), d.decide(wl(state="running"), node(), NOW, POLICY),
             d.decide(wl(lastAction=last_action("create", NOW - 5)), node(), NOW, POLICY)]
    assert all(decision.quiet for decision in quiet), [decision.reason for decision in quiet]
    loud = [d.decide(wl(state="running"), node(False, NOW - 10), NOW, POLICY),
            d.decide(wl(state="exited", exitCode=3, spec={"restartPolicy": "Never"}), node(), NOW, POLICY)]
    assert not any(decision.quiet for decision in loud)


def test_node_lost_release_warns() -> None:
    decision = d.decide(wl(deleting=True, state="running"), node(False, NOW - 301), NOW, POLICY)
    assert decision.warning and "gone" in decision.reason


def test_a_launch_not_reported_in_grace_is_asked_about_every_launch_check_until_the_grace_ends() -> None:
    """Waiting for a launch's first report, the reconciler asks the agent every ``launch_check`` whether it still
    knows that launch (if_forgotten: what to do at once if not); the last wait ends with the grace."""
    policy = dataclasses.replace(POLICY, launch_check=5)
    for acted, requeue in ((NOW - 5, 5), (NOW - 27, 3)):
        decision = d.decide(wl(lastAction=last_action("create", acted)), node(), NOW, policy)
        assert (decision.action, decision.if_forgotten) == (d.WAIT, d.CREATE)
        assert decision.requeue_after == pytest.approx(requeue)
    spec_changed = d.decide(wl(state="running", specHash="0123456789abcdef",
                               lastAction=last_action("recreate", NOW - 5)), node(), NOW, policy)
    assert (spec_changed.action, spec_changed.if_forgotten) == (d.WAIT, d.RECREATE)


def test_waits_in_grace_for_other_actions_ask_nothing() -> None:
    restarted = d.decide(wl(state="exited", exitCode=1, finishedAt=to_iso(NOW - 6),
                            lastAction=last_action("restart", NOW - 5)), node(), NOW, POLICY)
    assert restarted.action == d.WAIT and restarted.if_forgotten is None
    assert restarted.requeue_after == pytest.approx(25)


def test_new_crash_after_restart_is_not_held_by_grace() -> None:
    workload = wl(state="exited", exitCode=1, consecutiveFailures=1, finishedAt=to_iso(NOW - 25),
                  lastAction=last_action("restart", NOW - 29))
    decision = d.decide(workload, node(), NOW, POLICY)
    assert decision.action == d.RESTART and decision.failures == 2


def crash_loop(clock: FakeClock, spec: dict[str, Any] | None = None, ran: float = 1.0) -> list[float]:
    """Simulate a container that crashes after ``ran`` seconds each time; the waits the reconciler imposes."""
    waits: list[float] = []
    status: dict[str, Any] = {"consecutiveFailures": 0, "restarts": 0}
    for _ in range(8):
        started = clock.now()
        clock.advance(ran)
        workload = wl(state="exited", exitCode=1, startedAt=to_iso(started), finishedAt=to_iso(clock.now()),
                      spec=spec, **status)
        waited = 0.0
        while (decision := d.decide(workload, node(), clock.now(), POLICY)).action == d.WAIT:
            assert decision.backoff_until is not None and decision.requeue_after is not None
            clock.advance(decision.requeue_after)
            waited += decision.requeue_after
        assert decision.action == d.RESTART
        waits.append(round(waited, 3))
        status = {"consecutiveFailures": decision.failures, "restarts": status["restarts"] + 1}
    return waits


def test_backoff_doubles_from_10s_to_5min() -> None:
    assert crash_loop(FakeClock()) == [0, 10, 20, 40, 80, 160, 300, 300]


def test_backoff_override_per_workload() -> None:
    assert crash_loop(FakeClock(), {"backoff": {"initialSeconds": 1, "maxSeconds": 4}}) == [0, 1, 2, 4, 4, 4, 4, 4]


def test_backoff_resets_after_ten_minutes_running() -> None:
    assert crash_loop(FakeClock(), ran=600) == [0] * 8


def test_backoff_delay_helper() -> None:
    assert [d.backoff_delay(n, 10, 300) for n in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]


def test_pull_failures_back_off_like_crashes() -> None:
    """A failing image pull is retried at once, then after 10 s, 20 s, … (the workload's back-off)."""
    clock, status, waits = FakeClock(), {"consecutiveFailures": 0}, []
    for _ in range(5):
        acted = clock.now()
        clock.advance(0.5)
        workload = wl(state="missing", containerReason="ImagePullFailed", containerMessage="connection refused",
                      finishedAt=to_iso(clock.now()), lastAction=last_action("recreate", acted), **status)
        waited = 0.0
        while (decision := d.decide(workload, node(), clock.now(), POLICY)).action == d.WAIT:
            assert decision.requeue_after is not None and "connection refused" in decision.reason
            clock.advance(decision.requeue_after)
            waited += decision.requeue_after
        assert decision.action == d.RECREATE
        waits.append(round(waited, 3))
        status = {"consecutiveFailures": decision.failures}
    assert waits == [0, 10, 20, 40, 80]
