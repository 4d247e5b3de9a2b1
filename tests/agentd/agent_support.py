"""Helpers of the agent tests only: the HMAC key, fresh uids, and following a ``docker kill``.

Workload bodies and polling are shared by every area: ``tests.support.workloads`` and ``tests.support.eventually``.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from persys.agentclient import AgentClient
from tests.support.eventually import eventually

KEY_ID = "default"
SECRET = secrets.token_hex(32).encode()


def new_uid() -> str:
    return str(uuid.uuid4())


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
