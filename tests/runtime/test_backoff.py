"""The one back-off curve: initial, doubling to a cap, jitter within bounds, reset after a success."""

from __future__ import annotations

import asyncio

import pytest

from persys.runtime.backoff import Backoff, delay_for
from persys.runtime.clock import FakeClock


@pytest.mark.parametrize(("failures", "expected"), [(0, 0.0), (-1, 0.0), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0),
                                                   (5, 5.0), (10_000, 5.0)])
def test_delay_for(failures: int, expected: float) -> None:
    assert delay_for(failures, 0.5, 5.0) == expected


def test_delay_for_refuses_infinite_bounds() -> None:
    with pytest.raises(ValueError):
        delay_for(1, float("inf"), 5.0)


def test_next_doubles_to_the_cap_and_reset_starts_over() -> None:
    backoff = Backoff(1.0, 8.0, jitter=0)
    assert [backoff.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.failures == 6
    backoff.reset()
    assert backoff.failures == 0 and backoff.next() == 1.0


def test_jitter_stays_within_its_fraction() -> None:
    backoff = Backoff(10.0, 10.0, jitter=0.2)
    delays = [backoff.next() for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(("initial", "maximum"), [(0.0, 1.0), (2.0, 1.0), (1.0, float("inf")), (-1.0, 1.0)])
def test_bad_bounds(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, maximum)


async def test_sleep_waits_on_the_clock() -> None:
    clock = FakeClock()
    backoff = Backoff(2.0, 30.0, jitter=0, clock=clock)
    sleeping = asyncio.create_task(backoff.sleep())
    await asyncio.sleep(0)
    clock.advance(1.9)
    await asyncio.sleep(0)
    assert not sleeping.done()
    clock.advance(0.1)
    assert await sleeping == 2.0
