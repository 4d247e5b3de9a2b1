"""Fan-out of workload state changes to every ``GET /v1/events`` subscriber, and launch reports.

Runtimes publish; each subscriber gets its own bounded queue so that one slow reader can
never block the runtime or the other readers (it loses its oldest lines instead, and the
monitor's periodic ``GET /v1/workloads`` resync covers the gap).

A workload whose container does not exist yet (its image is being pulled) or could not be
launched has no state in Docker to report, so ``LaunchReports`` keeps that state in memory:
published as it changes, and merged into ``GET /v1/workloads`` so a poll sees it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import contextmanager
from typing import Any

from persys.agentd.runtime import PULLING, WorkloadSpec, WorkloadState, failure_message, launch_reason
from persys.resources.model import now_iso

PULL_REPORT_INTERVAL = 1.0  # seconds between two pull progress events of one uid
MAX_REPORT_MESSAGE = 1000
UNHEALTHY = "Unhealthy"  # the reason of a container the prober stopped (a liveness or startup probe failed)


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


class LaunchReports:
    """The state of uids being launched: a pull in progress, or the last failed apply.

    A report lives from the moment an apply needs it until the next apply of the uid starts
    or the uid is removed. It stands in for a missing container; a failure also explains an
    existing container that is not running (created but never started).
    """

    def __init__(self, node: str, hub: EventHub, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.hub = hub
        self.clock = clock
        self._reports: dict[str, WorkloadState] = {}
        self._unhealthy: dict[str, str] = {}  # uid → why the prober stopped its container
        self._published: dict[str, float] = {}  # uid -> monotonic time of its last pull event

    def pulling(self, workload: WorkloadSpec, image: str, progress: str) -> None:
        """Report pull progress; the first report of a pull is published at once, then at most once a second."""
        self._reports[workload.uid] = WorkloadState(
            uid=workload.uid, name=workload.name, namespace=workload.namespace, node=self.node, state="pulling",
            specHash=workload.spec_hash, reason=PULLING, message=f"pulling image {image}: {progress}")
        now, last = self.clock(), self._published.get(workload.uid)
        if last is None or now - last >= PULL_REPORT_INTERVAL:
            self._published[workload.uid] = now
            self.hub.publish(self._reports[workload.uid])

    def end_pull(self, uid: str) -> None:
        """Forget a pull report (the pull is over); a failure report stays."""
        report = self._reports.get(uid)
        if report is not None and report.state == "pulling":
            self.clear(uid)

    def failed(self, actual: WorkloadState, error: Exception) -> None:
        """Remember and publish why an apply failed, on top of the actual state of the uid."""
        message = failure_message(error)
        if len(message) > MAX_REPORT_MESSAGE:
            message = message[:MAX_REPORT_MESSAGE - 1] + "…"
        report = dataclasses.replace(actual, reason=launch_reason(error), message=message, finishedAt=now_iso())
        self._reports[actual.uid] = report
        self.hub.publish(report)

    def unhealthy(self, uid: str, message: str) -> None:
        """The prober is stopping the container of ``uid``: its exit is explained by ``message``
        (reason ``Unhealthy``) until the container starts again."""
        self._unhealthy[uid] = message

    def restarted(self, uid: str) -> None:
        """The container of ``uid`` starts again: the last liveness failure no longer explains anything."""
        self._unhealthy.pop(uid, None)

    def clear(self, uid: str) -> bool:
        """Forget the report of ``uid``; True if there was one."""
        self._published.pop(uid, None)
        self._unhealthy.pop(uid, None)
        return self._reports.pop(uid, None) is not None

    def get(self, uid: str) -> WorkloadState | None:
        """A copy of the report of ``uid`` (callers may change it), None without one."""
        report = self._reports.get(uid)
        return dataclasses.replace(report) if report is not None else None

    def explain(self, actual: WorkloadState) -> WorkloadState:
        """``actual`` with the failure that left its container not running, if one is remembered."""
        report = self._reports.get(actual.uid)
        if actual.state != "running" and report is None and actual.uid in self._unhealthy:
            return dataclasses.replace(actual, reason=UNHEALTHY, message=self._unhealthy[actual.uid])
        if report is None or report.state == "pulling" or actual.state == "running":
            return actual
        return dataclasses.replace(actual, reason=report.reason, message=report.message,
                                   finishedAt=report.finishedAt)

    def merge(self, actual: list[WorkloadState]) -> list[WorkloadState]:
        """Every actual state explained, then the report of every uid that has no container."""
        seen = {state.uid for state in actual}
        return [self.explain(state) for state in actual] + [
            dataclasses.replace(report) for uid, report in self._reports.items() if uid not in seen]
