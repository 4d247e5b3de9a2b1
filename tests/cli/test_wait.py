"""What `persys apply --wait` counts as converged, per workload kind of spec."""

from __future__ import annotations

from typing import Any

from persys.cli.wait import judge
from persys.resources import Resource
from tests.support.workloads import workload


def observed(status: dict[str, Any], **spec: Any) -> Resource:
    """A workload at generation 1 whose controllers reported ``status``."""
    obj = workload("w", image="i", status=status, **spec)
    obj.metadata.generation = 1
    return obj


def test_service_converges_when_running() -> None:
    assert judge(observed({"phase": "Running"})).converged
    assert not judge(observed({"phase": "Pending"})).converged
    assert not judge(observed({"phase": "CrashLoopBackOff", "message": "back-off 10s"})).final


def test_job_converges_on_exit_zero_and_fails_finally_with_never() -> None:
    assert judge(observed({"phase": "Exited", "exitCode": 0}, restartPolicy="OnFailure")).converged
    assert not judge(observed({"phase": "Running"}, restartPolicy="OnFailure")).converged
    failed = judge(observed({"phase": "Exited", "exitCode": 3}, restartPolicy="Never"))
    assert failed.final and not failed.converged and "Exited 3" in failed.reason


def test_stopped_and_unobserved_generation() -> None:
    assert judge(observed({"phase": "Stopped"}, desiredState="Stopped")).converged
    assert not judge(observed({"phase": "Running"}, desiredState="Stopped")).converged
    stale = observed({"phase": "Running", "observedGeneration": 1})
    stale.metadata.generation = 2
    assert not judge(stale).converged
