"""The report cache's follower: a poll's answer never undoes newer reports from the stream.

The agent here is a stand-in object that hands the follower a stream and a poll answer when the test
says so: what is tested is the ordering of the two inside the follower, not the agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from persys.controllers.reports import Follower, Report, ReportCache
from persys.errors import AgentError
from tests.support.eventually import eventually


class SteppedAgent:
    """An agent whose poll answers only when ``answer`` is set, and whose stream yields what is put in it."""

    def __init__(self, snapshot: list[Report]) -> None:
        self.snapshot = snapshot
        self.polled = asyncio.Event()
        self.answer = asyncio.Event()
        self.stream: asyncio.Queue[Report] = asyncio.Queue()

    async def list(self) -> list[Report]:
        snapshot = list(self.snapshot)  # taken when asked: older than what the stream says next
        self.polled.set()
        await self.answer.wait()
        return snapshot

    async def events(self) -> AsyncIterator[Report]:
        while True:
            yield await self.stream.get()


async def test_a_launch_reported_while_a_poll_is_on_its_way_survives_the_poll() -> None:
    agent = SteppedAgent([{"uid": "old", "state": "running"}])
    cache, notified = ReportCache(), []
    follower = Follower("n1", lambda: agent, cache, lambda node, r: notified.append(r.get("uid")),  # type: ignore[arg-type, return-value]
                        poll_seconds=3600, backoff_max=1)
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(agent.polled.wait(), 5)
        await agent.stream.put({"uid": "new", "state": "running"})  # launched after the snapshot
        await eventually(lambda: "new" in notified)
        agent.answer.set()
        await eventually(lambda: cache.synced("n1"))
        new: Any = cache.get("n1", "new")
        assert new is not None and new["state"] == "running"
        assert cache.get("n1", "old") is not None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class RestartingAgent:
    """An agent that runs ``old`` until its stream breaks (a kill), and then nothing (it restarted empty)."""

    def __init__(self) -> None:
        self.running: list[Report] = [{"uid": "old", "state": "running"}]
        self.polls = 0
        self.kill = asyncio.Event()

    async def list(self) -> list[Report]:
        self.polls += 1
        return list(self.running)

    async def events(self) -> AsyncIterator[Report]:
        await self.kill.wait()
        self.kill.clear()
        self.running = []
        raise AgentError("agent n1: connection reset")
        yield {}  # an async generator


async def test_a_broken_stream_polls_at_once_so_a_restarted_agent_is_seen_empty() -> None:
    agent = RestartingAgent()
    cache, notified = ReportCache(), []
    follower = Follower("n1", lambda: agent, cache, lambda node, r: notified.append(r.get("uid")),  # type: ignore[arg-type, return-value]
                        poll_seconds=3600, backoff_max=1)
    task = asyncio.create_task(follower.run())
    try:
        await eventually(lambda: cache.get("n1", "old") is not None)
        assert agent.polls == 1
        agent.kill.set()
        await eventually(lambda: agent.polls >= 2 and cache.get("n1", "old") is None)  # not 3600 s later
        assert notified.count("old") == 2  # the first poll, then its disappearance
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_reports_are_found_by_workload_name_through_puts_polls_and_drops() -> None:
    cache = ReportCache()
    cache.put("n1", {"uid": "u1", "name": "web", "namespace": "prod", "state": "running"})
    cache.put("n2", {"uid": "u2", "name": "web", "namespace": "prod", "state": "running"})  # a stray copy
    cache.put("n2", {"uid": "u3", "name": "db", "state": "running"})  # no namespace: default
    assert sorted(node for node, _ in cache.named("prod", "web")) == ["n1", "n2"]
    assert [r["uid"] for _, r in cache.named("default", "db")] == ["u3"]
    cache.put("n1", {"uid": "u1", "name": "web", "namespace": "prod", "state": "exited"})  # a newer report
    assert {r["state"] for node, r in cache.named("prod", "web") if node == "n1"} == {"exited"}
    assert cache.replace("n2", [{"uid": "u3", "name": "db", "state": "running"}]) == {"u2", "u3"}  # u2 is gone
    assert [node for node, _ in cache.named("prod", "web")] == ["n1"]
    cache.drop("n1")
    assert cache.named("prod", "web") == [] and cache.named("default", "db") != []
    assert cache.named("prod", "nothing") == []
