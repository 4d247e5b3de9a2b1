"""``eventually``: poll a condition until it holds, with a deadline, for every test area.

Tests wait for asynchronous effects (a watch event, a container, a DNS answer) by polling, never
by sleeping a guessed time and never by asserting how long something took. The probe may be a
plain function or a coroutine function (or a function returning an awaitable); what it returns
first that is truthy is handed back, so a test can poll for a value and then use it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], T | Awaitable[T]], timeout: float = 20.0, what: str = "condition",
                     *, interval: float = 0.05) -> T:
    """The first truthy result of ``probe()``; fails the test after ``timeout`` seconds, naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = probe()
        value: T = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {value!r})")
        await asyncio.sleep(interval)
