"""Helpers for the runtime tests: workloads to store, and waiting for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from persys.resources import REGISTRY, Resource


def workload(name: str, image: str = "persys/busybox:local", **labels: str) -> Resource:
    return REGISTRY.parse({"apiVersion": "persys.dev/v1", "kind": "Workload",
                           "metadata": {"name": name, "labels": labels}, "spec": {"image": image}})


async def eventually(check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait until ``check()`` holds (fails the test after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
