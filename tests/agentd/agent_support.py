"""Helpers shared by the agent tests (constants, workload bodies, polling with a deadline)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from persys.agentclient import AgentClient

KEY_ID = "default"
SECRET = secrets.token_hex(32).encode()
T = TypeVar("T")


def workload(uid: str, node: str, **spec: Any) -> dict[str, Any]:
    """A Workload resource as controllers send it: metadata.uid and spec.nodeName set."""
    body: dict[str, Any] = {"type": "container", "image": "persys/busybox:local", "command": ["sleep", "3600"],
                            "network": "host", "nodeName": node, **spec}
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": f"w-{uid[:8]}", "namespace": "default", "uid": uid}, "spec": body}


def new_uid() -> str:
    return str(uuid.uuid4())


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def docker_kill_event(client: AgentClient, uid: str, container: str) -> dict[str, Any]:
    """Follow the agent's event stream, ``docker kill`` the container, and return the exited event."""
    seen: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in client.events():
            seen.append(event)

    def has(state: str) -> Callable[[], Awaitable[dict[str, Any] | None]]:
        async def probe() -> dict[str, Any] | None:
            return next((e for e in seen if e["uid"] == uid and e["state"] == state), None)
        return probe

    follower = asyncio.create_task(follow())
    try:
        await eventually(has("running"), what="snapshot of the running container")
        process = await asyncio.create_subprocess_exec("docker", "kill", container, stdout=asyncio.subprocess.DEVNULL)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        return await eventually(has("exited"), what="exited event after docker kill")
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
