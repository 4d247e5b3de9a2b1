"""``publish``: a page built from several mirrored collections is first sent once every one of them is listed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from persys.gateway.dashboard import streams


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, name: str, data: dict[str, Any]) -> None:
        self.sent.append((name, data))


async def test_the_first_render_waits_for_every_list() -> None:
    """Nodes listed, workloads not yet: the nodes page said "No nodes have registered" in a full test run."""
    stream, changed = Recorder(), asyncio.Event()
    listed = (asyncio.Event(), asyncio.Event())
    task = asyncio.create_task(streams.publish(cast(Any, stream), changed, lambda: [("nodes", "both")],
                                               listed=listed))
    try:
        listed[1].set()
        changed.set()  # the second collection listed first
        await asyncio.sleep(0.05)
        assert stream.sent == []
        listed[0].set()
        await asyncio.sleep(0.05)
        assert stream.sent == [("html", {"target": "nodes", "html": "both"})]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
