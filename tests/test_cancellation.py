"""No ``asyncio.wait_for`` inside a loop: on Python 3.11 it swallows a cancellation that arrives in the
same loop iteration as the awaited result, and a loop around it then never ends.

Found by ``bench/failover.py``: a controller manager that lost its lease cancelled its controllers,
the status controller's node loop (``wait_for(nodes_changed.wait(), 1)``) swallowed the cancel, and
the manager never stepped down nor campaigned again. ``asyncio.timeout`` does not have the flaw.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
from pathlib import Path

import persys

PACKAGE = Path(persys.__file__).parent


def wait_for_calls_in_loops() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for loop in ast.walk(tree):
            if not isinstance(loop, (ast.While, ast.For, ast.AsyncFor)):
                continue
            for node in ast.walk(loop):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr == "wait_for" and getattr(node.func.value, "id", "") == "asyncio":
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return sorted(set(found))


def test_no_wait_for_inside_a_loop() -> None:
    assert wait_for_calls_in_loops() == []


async def test_the_idiom_used_instead_ends_its_loop_when_cancelled() -> None:
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await event.wait()
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    event.set()
    task.cancel()  # in the same loop iteration as the event: wait_for would swallow this
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()
