"""``Backoff``: the one retry delay of Persys (initial, doubling to a cap, with jitter).

Every loop that retries something after a failure (a broken watch, an agent stream, a
heartbeat, a DNS registration) waits with one of these instead of a private ``delay *= 2``.
``reset()`` after a success starts the next failure from ``initial`` again. ``delay_for(n)``
is the same curve as a pure function, for decisions that count failures themselves (the
reconciler's restart back-off).
"""

from __future__ import annotations

import math
import random

from persys.runtime.clock import Clock, SystemClock


def delay_for(failures: int, initial: float, maximum: float, factor: float = 2.0) -> float:
    """The wait after ``failures`` consecutive failures: 0 for none, then initial, ×factor, … ≤ maximum."""
    if failures <= 0:
        return 0.0
    if not (math.isfinite(initial) and math.isfinite(maximum)):
        raise ValueError("back-off bounds must be finite numbers")
    exponent = min(failures - 1, 64)  # beyond 2**64 × initial every cap is reached anyway
    return float(min(initial * factor ** exponent, maximum))


class Backoff:
    """Delays for consecutive failures: ``initial``, doubling up to ``maximum``, ± ``jitter`` (a fraction)."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, *, factor: float = 2.0, jitter: float = 0.1,
                 clock: Clock | None = None) -> None:
        if not 0 < initial <= maximum or not math.isfinite(maximum):
            raise ValueError(f"back-off needs 0 < initial <= maximum < inf, got {initial}, {maximum}")
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self.clock = clock or SystemClock()
        self.failures = 0

    def next(self) -> float:
        """Count one more failure and return how long to wait before the next try."""
        self.failures += 1
        base = delay_for(self.failures, self.initial, self.maximum, self.factor)
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(base, 0.0)

    def reset(self) -> None:
        """A success: the next failure waits ``initial`` again."""
        self.failures = 0

    async def sleep(self) -> float:
        """Wait ``next()`` seconds on the clock; returns the delay waited."""
        delay = self.next()
        await self.clock.sleep(delay)
        return delay
