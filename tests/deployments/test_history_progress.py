"""Revision history and the Progressing/Available conditions, row by row (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from persys.deployments import history, progress
from persys.deployments.progress import Seen
from persys.runtime.clock import to_iso

T0 = 1_800_000_000.0


def entry(number: int, hash_: str, available: bool = False) -> dict[str, Any]:
    return {"revision": number, "templateHash": hash_, "template": {"spec": {"image": hash_}},
            "createdAt": "", "available": available, "changeCause": ""}


def test_record_appends_a_new_template_as_the_next_revision() -> None:
    got = history.record([entry(1, "a")], "b", {"spec": {"image": "b"}}, "now", "bump")
    assert [(r["revision"], r["templateHash"], r["changeCause"]) for r in got] == [(1, "a", ""), (2, "b", "bump")]


def test_record_keeps_the_current_template() -> None:
    assert history.record([entry(1, "a"), entry(2, "b")], "b", {}, "now") == [entry(1, "a"), entry(2, "b")]


def test_record_moves_an_old_template_to_the_top_as_kubernetes_does() -> None:
    got = history.record([entry(1, "a", True), entry(2, "b")], "a", {}, "now")
    assert [(r["revision"], r["templateHash"], r["available"]) for r in got] == [(2, "b", False), (3, "a", True)]


TRIM = [
    # (limit, in use, kept revisions)
    (10, set(), [1, 2, 3, 4]),
    (2, set(), [2, 3, 4]),
    (0, set(), [4]),
    (0, {"a"}, [1, 4]),  # revision 1 still has Workloads: kept whatever the limit
]


@pytest.mark.parametrize(("limit", "in_use", "kept"), TRIM)
def test_trim(limit: int, in_use: set[str], kept: list[int]) -> None:
    revisions = [entry(1, "a"), entry(2, "b"), entry(3, "c"), entry(4, "d")]
    assert [r["revision"] for r in history.trim(revisions, limit, in_use)] == kept


def test_last_available_and_find() -> None:
    revisions = [entry(1, "a", True), entry(2, "b", True), entry(3, "c")]
    assert history.last_available(revisions, "c") == revisions[1]
    assert history.last_available(revisions, "b") == revisions[0]
    assert history.last_available([entry(1, "a")], "b") is None
    assert history.find(revisions, None) == revisions[1]  # undo: the one before the current
    assert history.find(revisions, 1) == revisions[0]
    assert history.find(revisions, 9) is None
    assert history.find([entry(1, "a")], None) is None


def seen(signature: tuple[Any, ...] = ("h", 3, 1, 3, 3), *, complete: bool = False, paused: bool = False,
         available: int = 3, minimum: int = 3) -> Seen:
    return Seen(signature, complete, paused, available, minimum)


def cond(reason: str, status: str = "True", updated: float = T0) -> dict[str, Any]:
    return {"type": "Progressing", "status": status, "reason": reason, "message": "",
            "lastTransitionTime": to_iso(T0), "lastUpdateTime": to_iso(updated)}


SIG = ("h", 3, 1, 3, 3)
PROGRESS = [
    # (why, old condition, old signature, seen, seconds after T0, expected status, reason, lastUpdateTime moves)
    ("first look, rolling", None, None, seen(), 0, "True", progress.UPDATED, True),
    ("something moved", cond(progress.UPDATED), ("h", 3, 0, 3, 3), seen(), 5, "True", progress.UPDATED, True),
    ("nothing moved, within the deadline", cond(progress.UPDATED), SIG, seen(), 9, "True", progress.UPDATED, False),
    ("nothing moved past the deadline", cond(progress.UPDATED), SIG, seen(), 11, "False", progress.DEADLINE, True),
    ("deadline stays until something moves", cond(progress.DEADLINE, "False"), SIG, seen(), 30, "False",
     progress.DEADLINE, False),
    ("a move after the deadline: progressing again", cond(progress.DEADLINE, "False"), ("h2", 3, 0, 3, 3), seen(),
     30, "True", progress.UPDATED, True),
    ("complete", cond(progress.UPDATED), SIG, seen(complete=True), 50, "True", progress.COMPLETE, True),
    ("complete stays complete", cond(progress.COMPLETE), SIG, seen(complete=True), 50, "True", progress.COMPLETE,
     False),
    ("paused", cond(progress.UPDATED), SIG, seen(paused=True), 50, "Unknown", progress.PAUSED, True),
    ("resumed", cond(progress.PAUSED, "Unknown"), SIG, seen(), 60, "True", progress.UPDATED, True),
]


@pytest.mark.parametrize(("why", "old", "old_sig", "now_seen", "after", "status", "reason", "moves"), PROGRESS,
                         ids=[row[0] for row in PROGRESS])
def test_progressing(why: str, old: dict[str, Any] | None, old_sig: tuple[Any, ...] | None, now_seen: Seen,
                     after: float, status: str, reason: str, moves: bool) -> None:
    now = T0 + after
    got = progress.progressing(old, old_sig, now_seen, now, to_iso(now), 10)
    assert (got["status"], got["reason"]) == (status, reason)
    assert (got["lastUpdateTime"] == to_iso(now)) is moves


def test_deadline_in_and_available() -> None:
    assert progress.deadline_in(cond(progress.UPDATED), T0 + 4, 10) == pytest.approx(6.05)
    assert progress.deadline_in(cond(progress.COMPLETE), T0 + 4, 10) is None
    assert progress.available(None, seen(available=2, minimum=2), "t")["status"] == "True"
    low = progress.available(None, seen(available=1, minimum=2), "t")
    assert (low["type"], low["status"], low["reason"]) == ("Available", "False", "MinimumReplicasUnavailable")
    merged = progress.merge([{"type": "Reconciled", "status": "True"}, cond(progress.UPDATED)], low)
    assert [c["type"] for c in merged] == ["Reconciled", "Progressing", "Available"]
