"""The report cache's follower: a poll's answer never undoes newer reports from the stream.

The agent here is a stand-in object that hands the follower a stream and a poll answer when the test
says so: what is tested is the ordering of the two inside the follower, not the agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from persys.controllers.reports import Follower, Report, ReportCache
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
