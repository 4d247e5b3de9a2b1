"""The audit trail's counters: events each sink recorded, and events it dropped, by reason.

Nothing is lost silently: every dropped event is counted in ``persys_audit_events_dropped_total``
and logged, at most once per ``LOG_EVERY`` seconds per sink and reason (with the number dropped
since), so that a flood of drops cannot flood the log too.
"""

from __future__ import annotations

import time

from prometheus_client import Counter

from persys.observability.logging import get_logger

RECORDED = Counter("persys_audit_events_total", "Audit events a sink recorded (written or pushed)", ["sink"])
DROPPED = Counter("persys_audit_events_dropped_total", "Audit events a sink dropped, by reason", ["sink", "reason"])
LOG_EVERY = 10.0

log = get_logger("audit")


class Drops:
    """Counts (and, throttled, logs) the events one sink drops."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
        self._unlogged: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}

    def drop(self, reason: str, count: int = 1, detail: str = "") -> None:
        DROPPED.labels(self.sink, reason).inc(count)
        self._unlogged[reason] = self._unlogged.get(reason, 0) + count
        now = time.monotonic()
        if now - self._logged_at.get(reason, -LOG_EVERY) >= LOG_EVERY:
            log.warning("audit events dropped", sink=self.sink, reason=reason, dropped=self._unlogged.pop(reason),
                        detail=detail or None)
            self._logged_at[reason] = now

    def recorded(self, count: int = 1) -> None:
        RECORDED.labels(self.sink).inc(count)
