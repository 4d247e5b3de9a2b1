"""The work queue: dedup, one key at a time, back-off (on a controllable clock), shutdown."""

from __future__ import annotations

import asyncio

import pytest

from persys.runtime.clock import FakeClock
from persys.runtime.workqueue import ShutDown, TokenBucket, WorkQueue


async def test_dedup_and_order() -> None:
    queue: WorkQueue[str] = WorkQueue("t-dedup")
    for key in ("a", "b", "a", "c", "b"):
        queue.add(key)
    assert len(queue) == 3
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_readded_while_processing_runs_again_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue("t-processing")
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # changed while a worker holds it
    assert len(queue) == 0  # not handed to a second worker
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    queue.done(key)
    assert await asyncio.wait_for(getter, 1) == "a"
    queue.done("a")


async def test_concurrent_workers_never_share_a_key() -> None:
    queue: WorkQueue[int] = WorkQueue("t-workers")
    active: set[int] = set()
    overlaps = 0
    processed = 0

    async def worker() -> None:
        nonlocal overlaps, processed
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            if key in active:
                overlaps += 1
            active.add(key)
            await asyncio.sleep(0.001)
            active.discard(key)
            processed += 1
            queue.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for round_ in range(20):
        for key in range(5):
            queue.add(key)
        await asyncio.sleep(0.002 * (round_ % 3))
    await asyncio.sleep(0.05)
    queue.shutdown()
    await asyncio.gather(*workers)
    assert overlaps == 0 and processed >= 5


async def test_per_key_backoff_doubles_on_the_clock_and_forget_resets() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue("t-backoff", clock=clock, base_delay=1.0, max_delay=4.0, rate=1000, burst=1000)
    assert [queue.add_rate_limited("a") for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    queue.forget("a")
    assert queue.add_rate_limited("a") == 1.0
    assert queue.num_requeues("a") == 1


async def test_add_after_waits_for_the_clock() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue("t-after", clock=clock)
    queue.add_after("late", 10)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    clock.advance(9)
    await asyncio.sleep(0.01)
    assert not getter.done()
    clock.advance(1)
    assert await asyncio.wait_for(getter, 1) == "late"


def idle_workers(queue: WorkQueue[str]) -> int:
    return sum(not waiter.done() for waiter in queue._waiters)


async def test_one_key_wakes_one_idle_worker() -> None:
    """client-go's Cond.Signal: 16 idle workers and one new key wake one worker, not 16."""
    queue: WorkQueue[str] = WorkQueue("t-signal")
    getters = [asyncio.create_task(queue.get()) for _ in range(16)]
    await asyncio.sleep(0.01)
    assert idle_workers(queue) == 16
    queue.add("a")
    await asyncio.sleep(0.01)
    assert [g.result() for g in getters if g.done()] == ["a"]
    assert idle_workers(queue) == 15
    queue.shutdown()
    await asyncio.gather(*getters, return_exceptions=True)


async def test_a_woken_worker_cancelled_before_it_runs_passes_the_key_on() -> None:
    queue: WorkQueue[str] = WorkQueue("t-handoff")
    first, second = asyncio.create_task(queue.get()), asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.add("a")  # wakes the first worker...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "a"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_delayed_key_wakes_one_worker_when_due() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue("t-due", clock=clock)
    getters = [asyncio.create_task(queue.get()) for _ in range(4)]
    await asyncio.sleep(0.01)
    queue.add_after("late", 5)
    queue.add_after("later", 7)
    queue.add_after("soon", 2)  # earlier than the armed timer: re-armed
    clock.advance(2)
    await asyncio.sleep(0.01)
    assert [g.result() for g in getters if g.done()] == ["soon"]
    clock.advance(5)
    await asyncio.sleep(0.01)
    assert sorted(g.result() for g in getters if g.done()) == ["late", "later", "soon"]
    queue.shutdown()
    await asyncio.gather(*getters, return_exceptions=True)
    assert queue._timer is None


async def test_workers_cancelled_leave_no_timer_behind() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue("t-no-timer", clock=clock)
    queue.add_after("late", 10)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert queue._timer is not None
    getter.cancel()
    await asyncio.gather(getter, return_exceptions=True)
    assert queue._timer is None


async def test_token_bucket_limits_overall_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock, rate=10, burst=2)
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.advance(1)
    assert bucket.reserve() == 0.0


async def test_shutdown_wakes_waiting_workers() -> None:
    queue: WorkQueue[str] = WorkQueue("t-shutdown")
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(getter, 1)
    queue.add("ignored")
    assert len(queue) == 0


def take_all(queue: WorkQueue[str]) -> list[str]:
    """Keys in the order workers would get them (each marked done at once)."""
    taken = []
    while len(queue):
        key = queue._next()
        assert key is not None
        queue._dirty.discard(key)
        taken.append(key)
    return taken


@pytest.mark.parametrize(("adds", "order"), [
    # (key, lane) in the order added -> the order workers get them
    ([("a", "backlog"), ("b", "backlog"), ("c", "now")], ["c", "a", "b"]),  # a live change goes first
    ([("a", "backlog"), ("a", "now"), ("b", "backlog")], ["a", "b"]),  # wanted now: moved out, once
    ([("a", "now"), ("a", "backlog")], ["a"]),  # already waiting in the first lane: stays there
    ([("a", "backlog"), ("a", "backlog"), ("b", "now")], ["b", "a"]),  # dedup inside the backlog
    ([("a", "now"), ("b", "now")], ["a", "b"]),
])
def test_the_backlog_waits_behind_live_changes(adds: list[tuple[str, str]], order: list[str]) -> None:
    queue: WorkQueue[str] = WorkQueue("t-backlog")
    for key, lane in adds:
        if lane == "backlog":
            with queue.backlog():
                queue.add(key)
        else:
            queue.add(key)
    assert len(queue) == len(order)
    assert take_all(queue) == order


async def test_a_backlog_key_readded_while_processing_comes_back_in_its_lane() -> None:
    queue: WorkQueue[str] = WorkQueue("t-backlog-processing")
    with queue.backlog():
        queue.add("a")
    assert await queue.get() == "a"
    with queue.backlog():
        queue.add("a")  # a resync while a worker holds it
    queue.add("b")
    queue.done("a")
    assert [await queue.get(), await queue.get()] == ["b", "a"]
