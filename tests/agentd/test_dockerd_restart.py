"""The agent through a dockerd restart, on a private dockerd (the machine's shared one is never touched).

With ``--live-restore`` the container runs on while dockerd is down; the agent's Docker event stream
breaks, and when dockerd is back it reconnects and republishes every workload's state, and Docker's
events reach the agent's subscribers again: a container killed after the restart is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import new_uid

from persys.agentd.docker import DockerRuntime
from tests.support.dockerd import PrivateDockerd
from tests.support.eventually import eventually
from tests.support.workloads import agent_workload as workload

IMAGE = "persys/busybox:local"
SCRIPT = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']


@pytest.fixture
def dockerd() -> Iterator[PrivateDockerd]:
    daemon = PrivateDockerd()
    try:
        daemon.start()
        daemon.load_image(IMAGE)
        yield daemon
    finally:
        daemon.destroy()


async def test_a_dockerd_restart_keeps_the_container_and_the_agent_follows_it_again(
        start_agent, client_for, dockerd: PrivateDockerd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent(lambda node, hub: DockerRuntime(node, hub, tmp_path / "state",
                                                              docker_url=dockerd.url, stop_timeout=1))
    client = client_for(agent)
    uid = new_uid()
    op = await client.apply(workload(uid, agent.config.name, image=IMAGE, command=SCRIPT))
    assert (await client.wait(op, 60))["state"] == "succeeded"
    before = await client.get(uid)
    assert before["state"] == "running"
    seen: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in client.events():
            seen.append(event)

    follower = asyncio.create_task(follow())
    try:
        await eventually(lambda: any(e["uid"] == uid for e in seen), what="the stream's snapshot")
        await asyncio.to_thread(dockerd.restart)
        restarted = len(seen)
        # the agent reconnects to the new daemon and says again what runs: the same container, still running
        await eventually(lambda: any(e["uid"] == uid and e["state"] == "running" for e in seen[restarted:]),
                         timeout=90, what="the workload's state republished after the restart")
        after = await client.get(uid)
        assert after["state"] == "running"
        assert (after["containerID"], after["startedAt"]) == (before["containerID"], before["startedAt"])
        # Docker's events are followed again: a kill now is reported as it happens
        killed = len(seen)
        await asyncio.to_thread(dockerd.docker, "kill", before["containerID"])
        event = await eventually(lambda: next((e for e in seen[killed:] if e["uid"] == uid and e["state"] == "exited"),
                                              None), timeout=30, what="the exited event from the new daemon")
        assert event["containerID"] == before["containerID"]
        # and the agent acts through it: a start runs the same container again
        assert (await client.wait(await client.start(uid), 60))["state"] == "succeeded"
        assert (await client.get(uid))["state"] == "running"
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


def test_dockerd_fixture_is_private(dockerd: PrivateDockerd) -> None:
    """The daemon under test is not the machine's: its own root, its own socket."""
    root = dockerd.docker("info", "--format", "{{.DockerRootDir}}").decode().strip()
    assert root == str(dockerd.root / "data") and root != "/var/lib/docker"
