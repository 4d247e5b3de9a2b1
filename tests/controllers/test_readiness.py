"""The Ready condition as the status controller derives it from the agent's report, row by row."""

from __future__ import annotations

from typing import Any

import pytest

from persys.controllers.phase import readiness
from persys.resources import REGISTRY, Resource


def wl(**status: Any) -> Resource:
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": "w"}, "spec": {"image": "persys/busybox:local"}})
    obj.spec["nodeName"] = "n1"
    obj.status = {"nodeName": "n1", **status}
    return obj


ROWS = [
    ("nothing reported", wl(), (False, "ContainerNotRunning", "container is not reported")),
    ("exited", wl(containerState="exited", containerReady=True), (False, "ContainerNotRunning", "container is exited")),
    ("running without probes", wl(containerState="running"), (True, "ContainerRunning", "container is running")),
    ("running, probes pass", wl(containerState="running", containerReady=True),
     (True, "ProbesPassed", "container is running and its probes pass")),
    ("running, readiness fails", wl(containerState="running", containerReady=False,
                                    probeMessage="Readiness probe failed: HTTP GET …: 404 Not Found"),
     (False, "ContainerNotReady", "Readiness probe failed: HTTP GET …: 404 Not Found")),
    ("running, startup probe pending", wl(containerState="running", containerReady=False,
                                          probeMessage="Startup probe has not passed yet"),
     (False, "ContainerNotReady", "Startup probe has not passed yet")),
]


@pytest.mark.parametrize(("workload", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_readiness(workload: Resource, expected: tuple[bool, str, str]) -> None:
    assert readiness(workload) == expected
