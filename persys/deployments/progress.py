"""A Deployment's conditions, ``Progressing`` and ``Available``, as a pure function of what it sees.

``Progressing`` says where the rollout is, as Kubernetes' does:

| situation | status | reason |
|---|---|---|
| paused | Unknown | DeploymentPaused |
| every replica updated and available | True | NewRevisionAvailable |
| something moved since the last look (another revision, other counts) | True | RevisionUpdated |
| nothing moved, within ``progressDeadlineSeconds`` of the last move | (unchanged) | (unchanged) |
| nothing moved for longer | False | ProgressDeadlineExceeded |

``lastUpdateTime`` is the time of the last move; the deadline counts from it. ``Available`` is
True while at least ``replicas - maxUnavailable`` replicas are available.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from persys.runtime.clock import from_iso

PROGRESSING, AVAILABLE = "Progressing", "Available"
PAUSED, COMPLETE, UPDATED, DEADLINE = ("DeploymentPaused", "NewRevisionAvailable", "RevisionUpdated",
                                       "ProgressDeadlineExceeded")


@dataclass(frozen=True)
class Seen:
    """What the controller sees now; ``signature`` changes whenever the rollout moves."""

    signature: tuple[Any, ...]
    complete: bool
    paused: bool
    available: int
    min_available: int


def progressing(old: dict[str, Any] | None, old_signature: tuple[Any, ...] | None, seen: Seen, now: float,
                now_iso: str, deadline: float) -> dict[str, Any]:
    """The Progressing condition after ``old`` (None: the first look)."""
    if seen.paused:
        return _condition(old, "Unknown", PAUSED, "the deployment is paused", now_iso, moved=False)
    if seen.complete:
        return _condition(old, "True", COMPLETE, "every replica runs the current revision", now_iso,
                          moved=old is None or old.get("reason") != COMPLETE)
    if old is None or old_signature != seen.signature or old.get("reason") in (PAUSED, COMPLETE):
        return _condition(old, "True", UPDATED, "rolling out the current revision", now_iso, moved=True)
    since = from_iso(old.get("lastUpdateTime")) or now
    if now - since > deadline:
        return _condition(old, "False", DEADLINE, f"no progress for {deadline:g}s (progressDeadlineSeconds)",
                          now_iso, moved=False)
    return dict(old)


def deadline_in(condition: dict[str, Any], now: float, deadline: float) -> float | None:
    """Seconds until a rollout still in progress misses its deadline (None: it is not in progress)."""
    if condition.get("reason") != UPDATED:
        return None
    since = from_iso(condition.get("lastUpdateTime")) or now
    return max(0.0, since + deadline - now) + 0.05  # look just after it passed


def available(old: dict[str, Any] | None, seen: Seen, now_iso: str) -> dict[str, Any]:
    if seen.available >= seen.min_available:
        return _condition(old, "True", "MinimumReplicasAvailable",
                          f"{seen.available} available, at least {seen.min_available} wanted", now_iso, moved=False)
    return _condition(old, "False", "MinimumReplicasUnavailable",
                      f"{seen.available} available, at least {seen.min_available} wanted", now_iso, moved=False)


def _condition(old: dict[str, Any] | None, status: str, reason: str, message: str, now_iso: str, *,
               moved: bool) -> dict[str, Any]:
    same = old is not None and old.get("status") == status
    changed = not same or old is None or old.get("reason") != reason
    return {"type": PROGRESSING if reason not in ("MinimumReplicasAvailable", "MinimumReplicasUnavailable")
            else AVAILABLE,
            "status": status, "reason": reason, "message": message,
            "lastTransitionTime": old.get("lastTransitionTime") if same and old is not None else now_iso,
            "lastUpdateTime": now_iso if moved or changed or old is None else old.get("lastUpdateTime", now_iso)}


def merge(conditions: Sequence[dict[str, Any]], *new: dict[str, Any]) -> list[dict[str, Any]]:
    """``conditions`` with ``new`` replacing those of the same types (other types, e.g. Reconciled, kept)."""
    types = {c["type"] for c in new}
    return [dict(c) for c in conditions if c.get("type") not in types] + [dict(c) for c in new]
