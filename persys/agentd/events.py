"""Fan-out of workload state changes to every ``GET /v1/events`` subscriber.

Runtimes publish; each subscriber gets its own bounded queue so that one slow reader can
never block the runtime or the other readers (it loses its oldest lines instead, and the
monitor's periodic ``GET /v1/workloads`` resync covers the gap).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import contextmanager
from typing import Any

from persys.agentd.runtime import WorkloadState
from persys.resources.model import now_iso


class EventHub:
    """Broadcasts state events (``{"type": "state", "time", …state}``) to subscribers."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def publish(self, state: WorkloadState) -> None:
        event = {"type": "state", "time": now_iso(), **state.to_dict()}
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    def close(self) -> None:
        """End every subscription (the agent is shutting down)."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

    @contextmanager
    def subscription(self) -> Any:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """Events from now on, until the hub closes."""
        with self.subscription() as queue:
            while (event := await queue.get()) is not None:
                yield event

    def __len__(self) -> int:
        return len(self._subscribers)
