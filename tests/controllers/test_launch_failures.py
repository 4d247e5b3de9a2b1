"""Launch failures on a real dockerd reach the workload: phase, the agent's own message, an Event, back-off.

Nothing leaves the machine: the unpullable image names a closed port on 127.0.0.1, and the
refused git repository too.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from controller_support import HollowNode, ManagerFactory, eventually, start_hollow_node, workload

from persys.agentd.docker import DockerRuntime
from persys.controllers.events import events_for
from persys.resources import Resource
from persys.store import ObjectStore


@pytest.fixture
async def docker_node(store: ObjectStore, tmp_path: Path) -> AsyncIterator[HollowNode]:
    """A node whose agent drives the real dockerd; its containers are removed afterwards."""
    name = f"docker-{secrets.token_hex(4)}"
    node = await start_hollow_node(name, store, runtime_factory=lambda n, hub: DockerRuntime(
        n, hub, tmp_path / "state", stop_timeout=1))
    try:
        yield node
    finally:
        await node.stop()
        async with aiodocker.Docker() as docker:
            for container in await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={name}"]}):
                await container.delete(force=True)


async def phase_is(store: ObjectStore, name: str, phase: str, **status: Any) -> Resource | None:
    obj = await store.get("Workload", "default", name)
    return obj if obj.status.get("phase") == phase and all(obj.status.get(k) == v for k, v in status.items()) \
        else None


async def test_unpullable_image_backs_off_with_the_registry_error(
        store: ObjectStore, docker_node: HollowNode, controllers: ManagerFactory) -> None:
    await controllers(backoff_initial=0.5, backoff_max=1.0, grace_seconds=5.0)
    await store.create(workload("nopull", image="127.0.0.1:9/persys-nope:1"))
    obj = await eventually(lambda: phase_is(store, "nopull", "ImagePullBackOff"), what="ImagePullBackOff",
                           timeout=30)
    assert "127.0.0.1:9" in obj.status["message"] and "connection refused" in obj.status["message"]
    assert obj.status["containerReason"] == "ImagePullFailed"
    events = await eventually(lambda: events_for(store, obj, "ImagePullFailed"), what="ImagePullFailed event")
    assert events[0].spec["type"] == "Warning" and "connection refused" in events[0].spec["message"]

    async def retried_with_backoff() -> Resource | None:
        current = await store.get("Workload", "default", "nopull")
        return current if int(current.status.get("consecutiveFailures") or 0) >= 3 else None

    obj = await eventually(retried_with_backoff, what="three launches with back-off", timeout=30)
    backoff = await events_for(store, obj, "BackOff")
    assert backoff and "ImagePullFailed" in backoff[0].spec["message"]
    assert obj.status["phase"] in ("ImagePullBackOff", "Pulling", "Starting")


async def test_bad_container_config_is_a_create_error_not_a_silent_starting(
        store: ObjectStore, docker_node: HollowNode, controllers: ManagerFactory) -> None:
    await controllers(backoff_initial=0.5, backoff_max=1.0, grace_seconds=5.0)
    await store.create(workload("nonet", network="persys-no-such-network"))
    obj = await eventually(lambda: phase_is(store, "nonet", "CreateContainerError"), what="CreateContainerError",
                           timeout=30)
    assert "persys-no-such-network" in obj.status["message"]
    assert await eventually(lambda: events_for(store, obj, "CreateContainerError"), what="event")


async def test_fixing_the_image_recovers_at_once(store: ObjectStore, docker_node: HollowNode,
                                                 controllers: ManagerFactory) -> None:
    await controllers(backoff_initial=30.0, backoff_max=60.0, grace_seconds=5.0)
    await store.create(workload("fixme", image="127.0.0.1:9/persys-nope:1"))
    await eventually(lambda: phase_is(store, "fixme", "ImagePullBackOff"), what="ImagePullBackOff", timeout=30)

    def fix(obj: Resource) -> None:
        obj.spec["image"] = "persys/busybox:local"

    await store.modify("Workload", "default", "fixme", fix)
    obj = await eventually(lambda: phase_is(store, "fixme", "Running", containerState="running"),
                           what="Running after the fix, without waiting out the back-off", timeout=20)
    assert obj.status["message"] == ""
