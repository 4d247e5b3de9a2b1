"""The work queue between event handlers and reconcile workers (client-go's ``workqueue``).

A key is queued at most once however often it is added (dedup), is never handed to two
workers at once (a key re-added while processing is queued again when the worker calls
``done``), can be added after a delay, and failed keys come back with a per-key exponential
back-off bounded by an overall token-bucket rate limit.

Keys added inside ``with queue.backlog():`` (a new leader's first pass over every object, a
periodic resync) wait in a second lane, taken only when the first is empty: a change that
happens during a takeover is not queued behind a thousand objects that need nothing. Adding a
backlog key normally moves it to the first lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge

from persys.runtime.backoff import delay_for
from persys.runtime.clock import Clock, SystemClock

K = TypeVar("K", bound=Hashable)

QUEUE_DEPTH = Gauge("persys_workqueue_depth", "Keys waiting in a work queue", ["name"])
QUEUE_ADDS = Counter("persys_workqueue_adds_total", "Keys added to a work queue", ["name"])
QUEUE_RETRIES = Counter("persys_workqueue_retries_total", "Keys re-added after a failure", ["name"])


class ShutDown(Exception):
    """Raised by ``get`` once the queue is shut down and drained."""


class TokenBucket:
    """An overall rate limit: ``rate`` keys a second with bursts up to ``burst``; returns the wait."""

    def __init__(self, clock: Clock, rate: float, burst: int) -> None:
        self.clock, self.rate, self.burst = clock, rate, burst
        self._tokens = float(burst)
        self._last = clock.now()

    def reserve(self) -> float:
        now = self.clock.now()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class WorkQueue(Generic[K]):
    """A deduplicating, rate-limited, delaying queue of keys."""

    def __init__(self, name: str, *, clock: Clock | None = None, base_delay: float = 0.05,
                 max_delay: float = 300.0, rate: float = 50.0, burst: int = 200) -> None:
        self.name = name
        self.clock = clock or SystemClock()
        self.base_delay, self.max_delay = base_delay, max_delay
        self._bucket = TokenBucket(self.clock, rate, burst)
        self._queue: deque[K] = deque()
        self._backlog: deque[K] = deque()  # may hold keys since moved to _queue or taken: skipped then
        self._low: set[K] = set()  # the keys waiting in the backlog only
        self._adding_low = False
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._delayed: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._waiters: deque[asyncio.Future[None]] = deque()  # idle workers, each woken alone (client-go's Cond.Signal)
        self._timer: asyncio.Task[None] | None = None  # wakes a worker when the first delayed key is due
        self._timer_due = 0.0
        self._shutting_down = False
        self._depth = QUEUE_DEPTH.labels(name)
        self._adds = QUEUE_ADDS.labels(name)
        self._retries = QUEUE_RETRIES.labels(name)

    def __len__(self) -> int:
        return len(self._queue) + len(self._low)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @contextlib.contextmanager
    def backlog(self) -> Iterator[None]:
        """Keys added inside go to the backlog lane (see the module's doc)."""
        self._adding_low = True
        try:
            yield
        finally:
            self._adding_low = False

    def add(self, key: K) -> None:
        """Queue ``key`` unless it is already waiting; a key being processed is re-queued on ``done``."""
        if self._shutting_down:
            return
        if key in self._dirty:
            if key in self._low and not self._adding_low:  # wanted now: out of the backlog
                self._low.discard(key)
                if key not in self._processing:
                    self._push(key)
            return
        self._adds.inc()
        self._dirty.add(key)
        if self._adding_low:
            self._low.add(key)
        if key not in self._processing:
            self._push(key)

    def _push(self, key: K) -> None:
        (self._backlog if key in self._low else self._queue).append(key)
        self._depth.set(len(self))
        self._signal()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (at once when ``delay`` <= 0)."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        heapq.heappush(self._delayed, (self.clock.now() + delay, next(self._seq), key))
        if self._waiters:
            self._arm_timer()

    def add_rate_limited(self, key: K) -> float:
        """Re-queue a failed key after its back-off (doubling per failure); returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = max(delay_for(failures + 1, self.base_delay, self.max_delay), self._bucket.reserve())
        self._retries.inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s back-off (after a success or a terminal failure)."""
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    def _promote_due(self) -> None:
        now = self.clock.now()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self.add(key)

    async def get(self) -> K:
        """The next key to process; the caller must call ``done(key)``. Raises ShutDown at the end."""
        while True:
            self._promote_due()
            key = self._next()
            if key is not None:
                self._depth.set(len(self))
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            if self._shutting_down:
                raise ShutDown(self.name)
            if self._delayed:
                self._arm_timer()
            await self._wait()

    def _next(self) -> K | None:
        if self._queue:
            return self._queue.popleft()
        while self._backlog:
            key = self._backlog.popleft()
            if key in self._low:
                self._low.discard(key)
                return key
        return None

    async def _wait(self) -> None:
        """Sleep until ``_signal`` picks this worker: one key wakes one worker, never all of them."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._signal()  # woken, then cancelled before it ran: another worker takes the wake-up
            elif not any(not w.done() for w in self._waiters) and self._timer is not None:
                self._timer.cancel()  # no worker left to wake
                self._timer = None
            raise

    def _signal(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _arm_timer(self) -> None:
        """Make sure a timer wakes a worker when the earliest delayed key is due."""
        due = self._delayed[0][0]
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().create_task(self._tick(due), name=f"workqueue-{self.name}-timer")

    async def _tick(self, due: float) -> None:
        await self.clock.sleep(due - self.clock.now())
        self._timer = None
        self._promote_due()  # adds (and so signals) what is due
        if self._delayed and self._waiters:
            self._arm_timer()

    def done(self, key: K) -> None:
        """Mark ``key`` processed; if it was added meanwhile it is queued again now."""
        self._processing.discard(key)
        if key in self._dirty:
            self._push(key)

    def shutdown(self) -> None:
        """Stop accepting keys; workers get ShutDown once the queue is empty."""
        self._shutting_down = True
        self._delayed.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:  # every idle worker, to see ShutDown
            self._signal()
