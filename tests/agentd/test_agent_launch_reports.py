"""Launch reports over a real dockerd: image pulls as state ``pulling``, failed applies with their reason.

Nothing reaches an external registry: ``127.0.0.1:9`` is a closed port (dockerd fails at once)
and the successful pull comes from ``registry_support.slow_registry`` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiodocker
import pytest
from agent_support import new_uid
from registry_support import slow_registry

from persys.agentclient import AgentClient
from persys.agentd.daemon import Agent
from persys.agentd.events import EventHub, LaunchReports
from persys.agentd.runtime import WorkloadSpec
from persys.errors import NotFound
from tests.support.eventually import eventually
from tests.support.workloads import agent_workload as workload

UNREACHABLE = "127.0.0.1:9/persys-nope:1"
Probe = Callable[[], Awaitable[dict[str, Any] | None]]


@asynccontextmanager
async def following(agent: Agent, client: AgentClient) -> AsyncIterator[list[dict[str, Any]]]:
    """The agent's event stream, collected into a list from the moment this is entered."""
    seen: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in client.events():
            seen.append(event)

    async def subscribed() -> bool:
        return len(agent.hub) > 0

    follower = asyncio.create_task(follow())
    try:
        await eventually(subscribed, what="event subscription")
        yield seen
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


def event(seen: list[dict[str, Any]], uid: str, **fields: Any) -> Probe:
    """A probe for the first event of ``uid`` with these field values."""
    async def probe() -> dict[str, Any] | None:
        return next((e for e in seen if e["uid"] == uid and all(e.get(k) == v for k, v in fields.items())), None)
    return probe


async def apply(client: AgentClient, body: dict[str, Any], expect: str) -> dict[str, Any]:
    op = await client.wait(await client.apply(body), 120)
    assert op["state"] == expect, op
    return dict(op)


async def failure(client: AgentClient, seen: list[dict[str, Any]], body: dict[str, Any], reason: str,
                  state: str = "missing") -> dict[str, Any]:
    """Apply ``body``, expect it to fail, and return the failure event, checked against the operation and GET."""
    uid = body["metadata"]["uid"]
    op = await apply(client, body, "failed")
    reported = await eventually(event(seen, uid, reason=reason), what=f"{reason} event")
    assert reported["state"] == state and reported["message"] == op["message"], (reported, op)
    assert reported["finishedAt"].endswith("Z") and reported["specHash"]
    got = await client.get(uid)
    assert {k: got[k] for k in ("state", "reason", "message", "finishedAt")} == \
        {k: reported[k] for k in ("state", "reason", "message", "finishedAt")}
    assert uid in [s["uid"] for s in await client.list()]
    return reported


async def test_unreachable_registry_reports_pulling_then_image_pull_failed(  # type: ignore[no-untyped-def]
        start_agent, client_for, docker_runtime) -> None:
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    async with following(agent, client) as seen:
        failed = await failure(client, seen, workload(uid, agent.config.name, image=UNREACHABLE), "ImagePullFailed")
        pulling = await eventually(event(seen, uid, state="pulling"), what="pulling event")
        assert seen.index(pulling) < seen.index(failed)
        assert pulling["reason"] == "Pulling" and pulling["message"] == f"pulling image {UNREACHABLE}: started"
        assert "dial tcp 127.0.0.1:9" in failed["message"] and "connection refused" in failed["message"]
        # the next apply forgets the failure; this one succeeds
        await apply(client, workload(uid, agent.config.name), "succeeded")
        running = await client.get(uid)
        assert running["state"] == "running" and running["reason"] == "" and running["message"] == ""
        await eventually(event(seen, uid, state="running", reason=""), what="running event")


async def test_invalid_reference_is_an_image_pull_failure_until_removed(  # type: ignore[no-untyped-def]
        start_agent, client_for, docker_runtime) -> None:
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    async with following(agent, client) as seen:
        failed = await failure(client, seen, workload(uid, agent.config.name, image="persys/BadUpper:x"),
                               "ImagePullFailed")
        assert "invalid reference format: repository name must be lowercase" in failed["message"], failed
        # a uid known only by its failure can be removed, and then it is gone
        await apply_removal(client, uid)
        await eventually(event(seen, uid, state="missing", message="removed"), what="removed event")
    with pytest.raises(NotFound):
        await client.get(uid)
    assert await client.list() == []


async def apply_removal(client: AgentClient, uid: str) -> None:
    op = await client.wait(await client.remove(uid), 60)
    assert op["state"] == "succeeded", op


@pytest.mark.parametrize(("spec", "state", "message"), [
    ({"workingDir": "relative/dir"}, "missing", "the working directory 'relative/dir' is invalid"),
    ({"network": "persys-no-such-network"}, "created", "network persys-no-such-network not found"),
])
async def test_docker_create_and_start_errors(start_agent, client_for, docker_runtime,  # type: ignore[no-untyped-def]
                                              spec: dict[str, Any], state: str, message: str) -> None:
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    async with following(agent, client) as seen:
        failed = await failure(client, seen, workload(uid, agent.config.name, **spec), "CreateContainerError", state)
        assert message in failed["message"], failed
        assert not any(e["uid"] == uid and e["state"] == "pulling" for e in seen)  # the image is local
        await apply(client, workload(uid, agent.config.name), "succeeded")
        assert (await client.get(uid))["reason"] == ""


async def test_pull_progress_is_reported_then_the_container_runs(  # type: ignore[no-untyped-def]
        start_agent, client_for, docker_runtime, docker_cleanup: aiodocker.Docker) -> None:
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    async with slow_registry("persys/busybox:local", "persys-pull-test", delay=0.08) as host, \
            following(agent, client) as seen:
        image = f"{host}/persys-pull-test:1"
        try:
            op = await client.apply(workload(uid, agent.config.name, image=image))

            async def polled_pulling() -> dict[str, Any] | None:
                try:
                    state = await client.get(uid)
                except NotFound:  # the apply has not started yet
                    return None
                return state if state["state"] == "pulling" else None

            assert (await eventually(polled_pulling, what="GET shows pulling"))["reason"] == "Pulling"
            assert (await client.wait(op, 120))["state"] == "succeeded"
            pulls = [e for e in seen if e["uid"] == uid and e["state"] == "pulling"]
            assert pulls[0]["message"] == f"pulling image {image}: started"
            assert any("MB" in e["message"] for e in pulls[1:]), pulls  # Docker's own progress, throttled
            assert (await client.get(uid))["state"] == "running"
            await apply_removal(client, uid)
        finally:
            await docker_cleanup.images.delete(image, force=True)


async def test_pull_progress_is_published_at_most_once_a_second() -> None:
    hub = EventHub()
    now = [0.0]
    reports = LaunchReports("n1", hub, clock=lambda: now[0])
    spec = WorkloadSpec.from_body("u1", workload("u1", "n1", image="r/i:1"))
    with hub.subscription() as queue:
        for at, progress in ((0.0, "started"), (0.4, "a"), (0.9, "b"), (1.0, "c"), (1.5, "d"), (2.2, "e")):
            now[0] = at
            reports.pulling(spec, "r/i:1", progress)
        published = [queue.get_nowait()["message"] for _ in range(queue.qsize())]
    assert published == ["pulling image r/i:1: started", "pulling image r/i:1: c", "pulling image r/i:1: e"]
    last = reports.get("u1")
    assert last is not None and (last.state, last.reason) == ("pulling", "Pulling")
    assert last.message == "pulling image r/i:1: e"
    reports.end_pull("u1")
    assert reports.get("u1") is None
