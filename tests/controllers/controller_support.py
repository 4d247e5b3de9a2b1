"""What the controller tests share beyond tests/support: factory types, and workloads that sleep.

Hollow nodes, controller timings and polling live once in ``tests.support``; they are
re-exported here so the controller tests read them from one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from persys.resources import Resource
from persys.runtime import Manager
from tests.support.eventually import eventually
from tests.support.hollow import FAST, SECRET, HollowNode, start_hollow_node
from tests.support.workloads import SLEEP
from tests.support.workloads import workload as _workload

NodeFactory = Callable[..., Awaitable[HollowNode]]
ManagerFactory = Callable[..., Awaitable[Manager]]

__all__ = ["FAST", "SECRET", "HollowNode", "ManagerFactory", "NodeFactory", "eventually", "start_hollow_node",
           "workload"]


def workload(name: str, **spec: Any) -> Resource:
    """A workload that sleeps (a real container needs a command: the test image has none)."""
    return _workload(name, **{"command": SLEEP, **spec})
