"""A Deployment's revision history: the templates it ran, numbered, kept in its status.

Kubernetes keeps old ReplicaSets as the history; here the Workloads of an old revision are
deleted once the rollout is done, so the history is a list in ``status.revisions``, one entry per
template: ``{revision, templateHash, template, createdAt, available, changeCause}``. The
controller is its only writer; ``persys rollout history`` prints it and ``persys rollout undo``
copies an entry's template back into ``spec.template``. As in Kubernetes, rolling back to an
old template moves that entry to a new, highest revision number, so the current template is
always the highest revision. ``available`` records that a revision once completed its rollout
(the target of an automatic rollback). Pure functions, tested row by row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

Revisions = list[dict[str, Any]]


def current_number(revisions: Sequence[dict[str, Any]]) -> int:
    return max((int(r["revision"]) for r in revisions), default=0)


def record(revisions: Sequence[dict[str, Any]], template_hash: str, template: dict[str, Any], now: str,
           change_cause: str = "") -> Revisions:
    """The history with ``template_hash`` as its current (highest) revision."""
    top = current_number(revisions)
    entries = [dict(r) for r in revisions]
    found = next((r for r in entries if r["templateHash"] == template_hash), None)
    if found is not None and int(found["revision"]) == top:
        return entries
    if found is not None:
        found["revision"] = top + 1
        return sorted(entries, key=lambda r: int(r["revision"]))
    return [*entries, {"revision": top + 1, "templateHash": template_hash, "template": template,
                       "createdAt": now, "available": False, "changeCause": change_cause}]


def mark_available(revisions: Sequence[dict[str, Any]], template_hash: str) -> Revisions:
    return [{**r, "available": True} if r["templateHash"] == template_hash else dict(r) for r in revisions]


def trim(revisions: Sequence[dict[str, Any]], limit: int, in_use: Collection[str]) -> Revisions:
    """Keep the current revision, the ``limit`` newest others, and any whose Workloads still exist."""
    top = current_number(revisions)
    others = sorted((r for r in revisions if int(r["revision"]) != top), key=lambda r: int(r["revision"]))
    kept = {int(r["revision"]) for r in others[len(others) - limit:]} if limit > 0 else set()
    return [dict(r) for r in revisions
            if int(r["revision"]) == top or int(r["revision"]) in kept or r["templateHash"] in in_use]


def last_available(revisions: Sequence[dict[str, Any]], excluding: str) -> dict[str, Any] | None:
    """The newest revision that once became available, other than the template ``excluding``."""
    candidates = [r for r in revisions if r.get("available") and r["templateHash"] != excluding]
    return max(candidates, key=lambda r: int(r["revision"]), default=None)


def find(revisions: Sequence[dict[str, Any]], number: int | None) -> dict[str, Any] | None:
    """Revision ``number``, or with None the one before the current (what ``rollout undo`` goes back to)."""
    if number is not None:
        return next((r for r in revisions if int(r["revision"]) == number), None)
    ordered = sorted(revisions, key=lambda r: int(r["revision"]))
    return ordered[-2] if len(ordered) >= 2 else None
