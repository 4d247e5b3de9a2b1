"""Reconciliation statistics: what the reconciler did, kept in memory and persisted to etcd.

``GET /reconciliation/stats`` and ``persys stats`` read the JSON under
``/persys/stats/reconciler``; the reconciler writes it after every full pass and every few
seconds while busy, fenced so that only the leader's numbers are stored.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter as PromCounter

from persys.errors import NotLeader
from persys.runtime.clock import to_iso
from persys.store.etcd import Etcd
from persys.store.keys import STATS_RECONCILER
from persys.store.objects import Fence

RECONCILE_ACTIONS = PromCounter("persys_reconcile_actions_total", "Reconciler actions by result",
                                ["action", "result"])


@dataclass
class PassStats:
    """One full pass over every workload."""

    started: float | None = None
    finished: float | None = None
    pending: set[Any] = field(default_factory=set)


@dataclass
class ReconcileStats:
    """Counters since the reconciler became leader (merged with what etcd held before)."""

    total: int = 0
    needing: int = 0
    errors: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    current: PassStats = field(default_factory=PassStats)
    last: PassStats = field(default_factory=PassStats)
    dirty: bool = False

    def observe(self, action: str, result: str) -> None:
        """Count one reconcile: its action (``none`` when nothing was needed) and result."""
        self.total += 1
        if action not in ("none",):
            self.needing += 1
        if result == "error":
            self.errors += 1
        self.actions[action] += 1
        self.dirty = True
        RECONCILE_ACTIONS.labels(action, result).inc()

    def start_pass(self, now: float, keys: set[Any]) -> None:
        self.current = PassStats(started=now, pending=set(keys))
        if not keys:
            self.finish_pass(now)

    def done(self, key: Any, now: float) -> bool:
        """Mark ``key`` handled in the current pass; True when that completes the pass."""
        if key not in self.current.pending:
            return False
        self.current.pending.discard(key)
        if not self.current.pending:
            self.finish_pass(now)
            return True
        return False

    def finish_pass(self, now: float) -> None:
        self.current.finished = now
        self.last, self.current = self.current, PassStats()
        self.dirty = True

    def to_dict(self) -> dict[str, Any]:
        last = self.last
        rate = (self.total - self.errors) / self.total if self.total else 1.0
        return {
            "totalProcessed": self.total,
            "needingReconciliation": self.needing,
            "errors": self.errors,
            "successRate": round(rate, 4),
            "actions": dict(sorted(self.actions.items())),
            "lastPass": {
                "start": to_iso(last.started) if last.started else None,
                "end": to_iso(last.finished) if last.finished else None,
                "durationSeconds": round(last.finished - last.started, 3) if last.started and last.finished
                else None,
            },
            "passInProgress": self.current.started is not None,
        }

    def load(self, data: dict[str, Any]) -> None:
        """Continue the counters a previous leader stored."""
        self.total = int(data.get("totalProcessed") or 0)
        self.needing = int(data.get("needingReconciliation") or 0)
        self.errors = int(data.get("errors") or 0)
        self.actions = Counter({str(k): int(v) for k, v in (data.get("actions") or {}).items()})


async def load_stats(etcd: Etcd) -> dict[str, Any]:
    kv = await etcd.get(STATS_RECONCILER)
    return dict(json.loads(kv.value)) if kv is not None else {}


async def save_stats(etcd: Etcd, stats: ReconcileStats, fence: Fence | None) -> None:
    body = json.dumps(stats.to_dict(), separators=(",", ":")).encode()
    if fence is None:
        await etcd.put(STATS_RECONCILER, body)
    else:
        ok, _ = await etcd.txn_put(STATS_RECONCILER, body, [fence.compare()])
        if not ok:
            raise NotLeader("lost leadership; statistics not written")
    stats.dirty = False
