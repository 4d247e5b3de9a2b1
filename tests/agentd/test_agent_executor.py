"""The operations queue: order per uid, bounded parallelism across uids, failures recorded; and the
small pure helpers (timestamps, request validation, spec hash without credentials)."""

from __future__ import annotations

import asyncio
import random

import pytest

from persys.agentd.executor import Executor
from persys.agentd.runtime import WorkloadSpec, rfc3339
from persys.errors import BadRequest, RuntimeFailure
from persys.resources.hashing import spec_hash


async def test_order_per_uid_and_bounded_parallelism() -> None:
    executor = Executor("n", parallelism=3)
    running = 0
    peak = 0
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": [], "d": []}

    def work(uid: str, i: int):  # type: ignore[no-untyped-def]
        async def run() -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(random.uniform(0, 0.01))
            seen[uid].append(i)
            running -= 1
        return run

    ops = [executor.submit(uid, "apply", work(uid, i)) for i in range(10) for uid in seen]
    await executor.drain()
    assert all(op.state == "succeeded" for op in ops)
    assert all(order == list(range(10)) for order in seen.values())
    assert 1 < peak <= 3


async def test_failures_and_long_poll() -> None:
    executor = Executor("n")

    async def fail() -> None:
        raise RuntimeFailure("image not found: x")

    async def crash() -> None:
        raise ValueError("boom")

    failed, crashed = executor.submit("u", "apply", fail), executor.submit("u", "apply", crash)
    assert (await executor.wait(failed.id, 5)).to_dict() == {
        "id": failed.id, "uid": "u", "action": "apply", "state": "failed", "message": "image not found: x"}
    assert (await executor.wait(crashed.id, 5)).message == "ValueError: boom"
    blocker = asyncio.Event()
    slow = executor.submit("v", "stop", blocker.wait)
    assert (await executor.wait(slow.id, 0.01)).state == "running"
    assert executor.pending("v") and not executor.pending("u")
    await executor.close(grace=0.01)
    assert slow.state == "failed" and "shut down" in slow.message


def test_rfc3339() -> None:
    assert rfc3339("2026-11-27T13:35:59.123456789Z") == "2026-11-27T13:35:59.123456Z"
    assert rfc3339("2026-11-27T15:35:59.5+02:00") == "2026-11-27T13:35:59.500000Z"
    assert rfc3339("0001-01-01T00:00:00Z") is None


def test_workload_spec_validation_and_hash() -> None:
    spec = {"type": "compose", "compose": {"repo": "https://example.invalid/a.git", "authSecret": "git"}}
    with_token = {**spec, "compose": {**spec["compose"], "auth": {"token": "t"}}}
    parsed = WorkloadSpec.from_body("u1", {"metadata": {"uid": "u1"}, "spec": with_token})
    assert parsed.spec_hash == spec_hash(spec)  # a rotated token never recreates the project
    for body, message in (({}, "spec"), ({"metadata": {"uid": "other"}, "spec": {"image": "x"}}, "does not match"),
                          ({"spec": {"type": "vm"}}, "unknown spec.type"), ({"spec": {"type": "compose"}}, "compose")):
        with pytest.raises(BadRequest, match=message):
            WorkloadSpec.from_body("u1", body)
