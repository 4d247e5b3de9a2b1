"""The garbage collector's rules, as pure functions: what becomes of a dependent, and of an owner being deleted.

A dependent names its owners in ``metadata.ownerReferences``. The collector sees each owner in one
``OwnerState``: present (an object of that kind and name *with that uid*), absent (no object, or one
recreated under the name with another uid: not the owner that was named), waiting (being deleted in
the foreground until its dependents are gone) or unresolved (a kind nobody knows, or a namespaced
owner named by a cluster-scoped dependent: nothing can be looked up, so nothing is concluded). As
Kubernetes' garbage collector does:

- a dependent with a present or unresolved owner stays, and drops its references to absent and
  waiting owners (so a foreground deletion does not take an object another owner still holds);
- a dependent whose owners are all absent or waiting is deleted: in the foreground when an owner
  waits and it has dependents of its own (the wait goes down the chain), in the background otherwise;
- an owner deleted with the ``orphan`` finalizer releases its dependents, then the finalizer;
- an owner deleted with the ``foregroundDeletion`` finalizer has every dependent deleted and drops
  the finalizer once none with ``blockOwnerDeletion`` remains.

Nothing here does I/O, so each row is tested directly (``tests/controllers/test_gc_rules.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from persys.resources.model import (
    FOREGROUND_DELETION,
    ORPHAN_FINALIZER,
    ObjectKey,
    OwnerReference,
    Propagation,
    Resource,
)
from persys.resources.registry import Kind

KEEP, DELETE, UNLINK = "keep", "delete", "unlink"


class OwnerState(StrEnum):
    """An owner as the collector sees it (see the module docstring)."""

    PRESENT = "present"
    ABSENT = "absent"
    WAITING = "waiting"
    UNRESOLVED = "unresolved"


GONE = (OwnerState.ABSENT, OwnerState.WAITING)


@dataclass(frozen=True)
class Verdict:
    """What to do with a dependent: keep it, delete it (with ``propagation``), or drop the ``unlink`` owners."""

    action: str
    reason: str
    propagation: Propagation | None = None
    unlink: frozenset[str] = frozenset()  # uids of the owner references to remove


@dataclass(frozen=True)
class Settlement:
    """What to do for an owner being deleted with a garbage-collector finalizer."""

    reason: str
    release: str | None = None              # the finalizer to remove now; None: keep waiting
    unlink: tuple[ObjectKey, ...] = ()      # dependents to release from this owner (orphan)
    enqueue: tuple[ObjectKey, ...] = ()     # dependents to look at again (foreground: they are to go)


def owner_key(ref: OwnerReference, dependent: Resource, kind: Kind | None) -> ObjectKey | None:
    """Where ``ref``'s owner is: in the dependent's namespace, or cluster-wide for a cluster-scoped kind.

    None when it cannot be anywhere: ``kind`` is unknown, or a cluster-scoped dependent names a
    namespaced owner (Kubernetes' rule: such a reference never resolves, so it never collects).
    """
    if kind is None:
        return None
    if not kind.namespaced:
        return ObjectKey(kind.kind, "", ref.name)
    if not dependent.metadata.namespace:
        return None
    return ObjectKey(kind.kind, dependent.metadata.namespace, ref.name)


def owner_state(ref: OwnerReference, owner: Resource | None) -> OwnerState:
    """The state of ``ref``'s owner, given what was found under its name (None: nothing)."""
    if owner is None or owner.metadata.uid != ref.uid:
        return OwnerState.ABSENT
    if owner.metadata.deletionTimestamp and FOREGROUND_DELETION in owner.metadata.finalizers:
        return OwnerState.WAITING
    return OwnerState.PRESENT


def judge(dependent: Resource, owners: Mapping[str, OwnerState], has_dependents: bool) -> Verdict:
    """What becomes of ``dependent``, given the state of each owner by uid (missing: unresolved)."""
    refs = dependent.metadata.ownerReferences
    if not refs:
        return Verdict(KEEP, "no owners")
    if dependent.metadata.deletionTimestamp:
        return Verdict(KEEP, "already being deleted")
    states = {ref.uid: owners.get(ref.uid, OwnerState.UNRESOLVED) for ref in refs}
    gone = [ref for ref in refs if states[ref.uid] in GONE]
    if len(gone) < len(refs):
        if not gone:
            return Verdict(KEEP, "its owners are present")
        kept = [ref for ref in refs if ref not in gone]
        return Verdict(UNLINK, f"{_names(gone)} gone or being deleted; {_names(kept)} still owns it",
                       unlink=frozenset(ref.uid for ref in gone))
    waiting = [ref for ref in refs if states[ref.uid] is OwnerState.WAITING]
    if waiting and has_dependents:
        return Verdict(DELETE, f"{_names(waiting)} is deleted in the foreground, and so is this, dependents first",
                       propagation=Propagation.FOREGROUND)
    if waiting:
        return Verdict(DELETE, f"{_names(waiting)} is deleted in the foreground", propagation=Propagation.BACKGROUND)
    return Verdict(DELETE, f"{_names(gone)} gone", propagation=Propagation.BACKGROUND)


def settle(owner: Resource, dependents: Sequence[Resource]) -> Settlement | None:
    """The step for ``owner`` (its ``dependents`` name its uid), or None when it is not being deleted
    with a garbage-collector finalizer."""
    meta = owner.metadata
    if not meta.deletionTimestamp:
        return None
    if ORPHAN_FINALIZER in meta.finalizers:
        return Settlement(f"orphaning {len(dependents)} dependent(s)", release=ORPHAN_FINALIZER,
                          unlink=tuple(sorted(d.key for d in dependents)))
    if FOREGROUND_DELETION not in meta.finalizers:
        return None
    pending = tuple(sorted(d.key for d in dependents if not d.metadata.deletionTimestamp))
    blocking = sorted(str(d.key) for d in dependents if blocks(d, meta.uid))
    if blocking:
        return Settlement(f"waiting for {len(blocking)} blocking dependent(s): {', '.join(blocking[:5])}",
                          enqueue=pending)
    return Settlement("no blocking dependents left", release=FOREGROUND_DELETION, enqueue=pending)


def blocks(dependent: Resource, owner_uid: str) -> bool:
    """Whether ``dependent`` holds back the foreground deletion of the owner ``owner_uid``."""
    return any(ref.uid == owner_uid and ref.blockOwnerDeletion for ref in dependent.metadata.ownerReferences)


def without_owners(obj: Resource, uids: frozenset[str]) -> None:
    """Drop the references to the owners ``uids`` (a ``store.modify`` change: in place)."""
    obj.metadata.ownerReferences = [ref for ref in obj.metadata.ownerReferences if ref.uid not in uids]


def _names(refs: Sequence[OwnerReference]) -> str:
    return ", ".join(f"{ref.kind.lower()}/{ref.name}" for ref in refs)
