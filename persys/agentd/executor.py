"""The operations queue: every change request becomes an operation run in the background.

The API answers 202 with an operation id at once; callers poll (or long-poll)
``GET /v1/operations/{id}``. Operations on one uid run strictly in submission order (a
fair lock per uid), operations on different uids run in parallel up to a bound (a
semaphore), so ten concurrent applies of one workload can never leave two containers.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Histogram

from persys.agentd.runtime import failure_message
from persys.errors import NotFound, PersysError
from persys.observability.logging import bound as log_context
from persys.observability.logging import get_logger
from persys.observability.tracing import tracer

OPERATIONS = Counter("persys_agent_operations_total", "Agent operations by action and result",
                     ["action", "result"])
OPERATION_SECONDS = Histogram("persys_agent_operation_duration_seconds", "Agent operation duration",
                              ["action"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))

log = get_logger("agent")
_ids = itertools.count(1)


@dataclass
class Operation:
    """One queued change: what, on which uid, and how it went."""

    id: str
    uid: str
    action: str
    state: str = "queued"
    message: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "uid": self.uid, "action": self.action, "state": self.state,
                "message": self.message}


class _UidLocks:
    """A fair lock per uid, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def acquire(self, uid: str) -> asyncio.Lock:
        lock, users = self._locks.get(uid, (asyncio.Lock(), 0))
        self._locks[uid] = (lock, users + 1)
        return lock

    def busy(self, uid: str) -> bool:
        return uid in self._locks

    def release(self, uid: str) -> None:
        lock, users = self._locks[uid]
        if users <= 1:
            del self._locks[uid]
        else:
            self._locks[uid] = (lock, users - 1)


class Executor:
    """Runs operations in the background: in order per uid, in parallel (bounded) across uids."""

    def __init__(self, node: str, parallelism: int = 8, history: int = 2000) -> None:
        self.node = node
        self.history = history
        self._semaphore = asyncio.Semaphore(parallelism)
        self._locks = _UidLocks()
        self._operations: OrderedDict[str, Operation] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def submit(self, uid: str, action: str, work: Callable[[], Awaitable[Any]]) -> Operation:
        """Queue ``work`` for ``uid``; returns the operation at once."""
        if self._closed:
            raise PersysError("agent is shutting down")
        op = Operation(id=f"op-{next(_ids)}-{secrets.token_hex(4)}", uid=uid, action=action)
        self._operations[op.id] = op
        while len(self._operations) > self.history:
            oldest = next(iter(self._operations.values()))
            if not oldest.done.is_set():
                break
            self._operations.popitem(last=False)
        lock = self._locks.acquire(uid)  # taken synchronously so that submission order is run order
        task = asyncio.create_task(self._run(op, lock, work), name=f"agent-op-{op.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return op

    async def _run(self, op: Operation, lock: asyncio.Lock, work: Callable[[], Awaitable[Any]]) -> None:
        bound = log.bind(node=self.node, uid=op.uid, operation=op.id, action=op.action)
        try:
            async with lock, self._semaphore:
                op.state = "running"
                started = time.monotonic()
                with tracer("persys.agent").start_as_current_span(f"agent.{op.action}") as span, \
                        log_context(node=self.node, uid=op.uid, operation=op.id):
                    span.set_attribute("persys.uid", op.uid)
                    span.set_attribute("persys.node", self.node)
                    try:
                        await work()
                    except PersysError as e:
                        op.state, op.message = "failed", e.message
                    except Exception as e:  # a runtime bug must fail the operation, not kill the agent
                        bound.exception("operation crashed")
                        op.state, op.message = "failed", failure_message(e)
                    else:
                        op.state = "succeeded"
                OPERATION_SECONDS.labels(op.action).observe(time.monotonic() - started)
                OPERATIONS.labels(op.action, op.state).inc()
                if op.state == "failed":
                    bound.warning("operation failed", message=op.message)
                else:
                    bound.info("operation succeeded")
        except asyncio.CancelledError:
            op.state, op.message = "failed", "agent shut down before the operation finished"
            raise
        finally:
            self._locks.release(op.uid)
            op.done.set()

    def pending(self, uid: str) -> bool:
        """True while an operation on ``uid`` is queued or running."""
        return self._locks.busy(uid)

    def get(self, op_id: str) -> Operation:
        op = self._operations.get(op_id)
        if op is None:
            raise NotFound(f"operation {op_id} not found")
        return op

    async def wait(self, op_id: str, timeout: float) -> Operation:
        """The operation once finished, or as it is when ``timeout`` runs out (long poll)."""
        op = self.get(op_id)
        try:
            await asyncio.wait_for(op.done.wait(), timeout)
        except TimeoutError:
            pass
        return op

    async def drain(self) -> None:
        """Wait for every queued operation to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 10.0) -> None:
        """Stop accepting work, let running operations finish for ``grace`` seconds, cancel the rest."""
        self._closed = True
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for op in self._operations.values():  # tasks cancelled before they ever ran
            if not op.done.is_set():
                op.state, op.message = "failed", "agent shut down before the operation ran"
                op.done.set()
