"""The prober's pure parts: a probe's verdict after a run of outcomes, and readiness judged per service."""

from __future__ import annotations

import pytest

from persys.agentd.prober import ProbeResults, Target
from persys.agentd.probes import Verdict, clip
from persys.agentd.runtime import WorkloadState
from persys.resources.probes import Probe


def probe(kind: str, failures: int = 3, successes: int = 1) -> Probe:
    return Probe(kind=kind, handler="tcpSocket", port=80, failure_threshold=failures, success_threshold=successes)


ROWS = [
    # (name, probe, outcomes, verdict after each, gave up at the end)
    ("liveness is alive before any outcome and through short failure runs",
     probe("livenessProbe"), [False, False, True, False, False], [True, True, True, True, True], False),
    ("liveness gives up after failureThreshold failures in a row",
     probe("livenessProbe"), [False, False, False], [True, True, False], True),
    ("liveness with threshold 1", probe("livenessProbe", failures=1), [True, False], [True, False], True),
    ("startup passes on one success", probe("startupProbe"), [False, False, True], [False, False, True], False),
    ("startup gives up", probe("startupProbe", failures=2), [False, False], [False, False], True),
    ("readiness needs successThreshold successes in a row",
     probe("readinessProbe", successes=2), [True, False, True, True], [False, False, False, True], False),
    ("readiness drops after failureThreshold failures",
     probe("readinessProbe", failures=2), [True, False, False, True], [True, True, False, True], False),
    ("readiness never gives up", probe("readinessProbe", failures=1), [False] * 5, [False] * 5, False),
]


@pytest.mark.parametrize(("spec", "outcomes", "verdicts", "gave_up"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_verdict(spec: Probe, outcomes: list[bool], verdicts: list[bool], gave_up: bool) -> None:
    verdict = Verdict(spec)
    assert [verdict.record(ok) for ok in outcomes] == verdicts
    assert verdict.gave_up is gave_up


def running(uid: str = "u1") -> WorkloadState:
    return WorkloadState(uid=uid, state="running", containerID="c1", startedAt="t1")


def target(service: str = "", run: str = "c1") -> Target:
    return Target("u1", service, run, "t1", {})


def test_no_gating_probe_leaves_readiness_to_running() -> None:
    state = ProbeResults().judge(running(), [("", "c1@t1", "")])
    assert (state.containerReady, state.probeMessage) == (None, "")


def test_a_gated_container_is_not_ready_until_its_probes_say_so() -> None:
    results = ProbeResults()
    assert results.judge(running(), [("", "c1@t1", "Readiness probe has not passed yet")]).containerReady is False
    assert results.set(target(), True, "")
    assert not results.set(target(), True, ""), "the same verdict is no change"
    assert results.judge(running(), [("", "c1@t1", "Readiness probe has not passed yet")]).containerReady is True
    # a new run of the container: the old verdict says nothing about it
    restarted = results.judge(running(), [("", "c1@t2", "Startup probe has not passed yet")])
    assert (restarted.containerReady, restarted.probeMessage) == (False, "Startup probe has not passed yet")


def test_compose_is_ready_when_every_gated_service_is() -> None:
    results = ProbeResults()
    results.set(target("web"), True, "")
    results.set(target("db", run="c2"), False, "service db: Readiness probe failed: TCP 127.0.0.1:5432: refused")
    runs = [("web", "c1@t1", "Readiness probe has not passed yet"), ("db", "c2@t1", True), ("cache", "c3@t1", False)]
    state = results.judge(running(), runs)
    assert state.containerReady is False
    assert state.probeMessage == "service db: Readiness probe failed: TCP 127.0.0.1:5432: refused"
    results.set(target("db", run="c2"), True, "")
    assert results.judge(running(), runs).containerReady is True
    results.forget("u1")
    assert results.judge(running(), runs).containerReady is False


def test_a_stopped_container_is_not_judged() -> None:
    state = WorkloadState(uid="u1", state="exited")
    assert ProbeResults().judge(state, [("", "c1@t1", "Readiness probe has not passed yet")]).containerReady is None


def test_clip_keeps_a_kilobyte_of_utf8() -> None:
    assert clip("é" * 2000).encode().__len__() <= 1000
    assert clip("short") == "short"
