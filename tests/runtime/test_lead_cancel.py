"""``lead``: a lost term campaigns again, and a cancel is never lost, even when it arrives as the
keepalive fails (Python 3.11's TaskGroup swallows it then: a stopping operator kept leading)."""

from __future__ import annotations

import asyncio

import pytest

from persys.resources.model import ObjectKey
from persys.runtime.controller import Controller, Result
from persys.runtime.manager import lead
from persys.runtime.workqueue import WorkQueue
from tests.support.eventually import eventually


class Elector:
    """Terms end when ``lose`` is set; every campaign wins at once."""

    def __init__(self) -> None:
        self.campaigns = 0
        self.lose = asyncio.Event()
        self.holding = asyncio.Event()

    async def acquire(self) -> None:
        self.campaigns += 1

    async def hold(self) -> None:
        self.holding.set()
        await self.lose.wait()
        self.lose.clear()
        self.holding.clear()

    async def resign(self) -> None:
        return None


async def test_a_lost_term_campaigns_again() -> None:
    elector = Elector()
    task = asyncio.create_task(lead(elector, [], asyncio.Event()))
    await asyncio.wait_for(elector.holding.wait(), 5)
    elector.lose.set()  # the term ends by itself: not a cancellation
    await eventually(lambda: elector.campaigns >= 2, timeout=5, what="a second campaign")
    await asyncio.wait_for(elector.holding.wait(), 5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancel_arriving_as_the_term_ends_stops_lead() -> None:
    elector = Elector()
    task = asyncio.create_task(lead(elector, [], asyncio.Event()))
    await asyncio.wait_for(elector.holding.wait(), 5)
    elector.lose.set()  # the keepalive fails (the stopping process resigned the Lease) ...
    task.cancel()  # ... in the same moment the process cancels its leader task
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert elector.campaigns == 1


class FailsWhenCancelled:
    """A controller whose clients are closed under it as the process stops: cancelled, it fails."""

    name = "fragile"

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("session closed") from None


async def test_a_controller_failing_as_it_is_cancelled_does_not_hide_the_cancel() -> None:
    elector = Elector()
    task = asyncio.create_task(lead(elector, [FailsWhenCancelled()], asyncio.Event()))  # type: ignore[list-item]
    await asyncio.wait_for(elector.holding.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


class ReconcileFailsWhenCancelled(Controller):
    """A reconcile whose HTTP call fails, not cancels, when the process stops under it (aiohttp's closed
    session): the retry policy catches that error, and the cancel is gone with it."""

    kind = "Workload"

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def reconcile(self, key: ObjectKey) -> Result:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("session closed") from None
        return Result()


async def test_a_worker_whose_reconcile_swallows_the_cancel_still_ends() -> None:
    controller = ReconcileFailsWhenCancelled()
    controller.queue = WorkQueue("swallower")
    controller.queue.add(ObjectKey("Workload", "default", "w"))
    worker = asyncio.create_task(controller._worker())
    await asyncio.wait_for(controller.started.wait(), 5)
    worker.cancel()
    done, _ = await asyncio.wait({worker}, timeout=5)
    assert worker in done, "the worker swallowed its cancel: requeued, reconciled again, never ends"
    assert worker.cancelled()
