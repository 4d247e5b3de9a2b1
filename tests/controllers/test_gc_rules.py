"""The garbage collector's rules, row by row: owner references, owner states, dependents, owners being deleted."""

from __future__ import annotations

from typing import Any

import pytest

from persys.controllers import ownership as o
from persys.errors import Cause, Invalid
from persys.resources import REGISTRY, ObjectKey, Resource
from persys.resources.model import FOREGROUND_DELETION, ORPHAN_FINALIZER, OwnerReference, Propagation
from persys.store.objects import with_propagation

PRESENT, ABSENT, WAITING, UNRESOLVED = (o.OwnerState.PRESENT, o.OwnerState.ABSENT, o.OwnerState.WAITING,
                                        o.OwnerState.UNRESOLVED)


def ref(name: str = "a", uid: str = "uid-a", kind: str = "Workload", **flags: bool) -> OwnerReference:
    return OwnerReference("persys.dev/v1", kind, name, uid, **flags)


def obj(name: str = "d", uid: str = "uid-d", *, kind: str = "Workload", owners: tuple[OwnerReference, ...] = (),
        deleting: bool = False, finalizers: tuple[str, ...] = ()) -> Resource:
    spec: dict[str, Any] = {"Workload": {"image": "persys/busybox:local"}, "Node": {}, "Secret": {}}[kind]
    field = "data" if kind == "Secret" else "spec"
    meta: dict[str, Any] = {"name": name} if kind == "Node" else {"name": name, "namespace": "default"}
    made = REGISTRY.parse({"kind": kind, "metadata": meta, field: spec})
    made.metadata.uid = uid
    made.metadata.ownerReferences = list(owners)
    made.metadata.finalizers = list(finalizers)
    made.metadata.deletionTimestamp = "2030-01-01T00:00:00.000000Z" if deleting else None
    return made


# -- which state an owner is in --

STATES = [
    ("nothing under the name", None, ABSENT),
    ("recreated under the name with another uid", obj("a", "uid-new"), ABSENT),
    ("the very owner", obj("a", "uid-a"), PRESENT),
    ("deleted in the background, held by another finalizer", obj("a", "uid-a", deleting=True,
                                                                  finalizers=("persys.dev/container",)), PRESENT),
    ("deleted in the foreground", obj("a", "uid-a", deleting=True, finalizers=(FOREGROUND_DELETION,)), WAITING),
    ("deleted orphaning its dependents", obj("a", "uid-a", deleting=True, finalizers=(ORPHAN_FINALIZER,)), PRESENT),
]


@pytest.mark.parametrize(("owner", "expected"), [(r[1], r[2]) for r in STATES], ids=[r[0] for r in STATES])
def test_owner_state(owner: Resource | None, expected: o.OwnerState) -> None:
    assert o.owner_state(ref(), owner) is expected


KEYS = [
    ("namespaced owner: the dependent's namespace", ref(), obj(), ObjectKey("Workload", "default", "a")),
    ("cluster-scoped owner: no namespace", ref("n1", kind="Node"), obj(), ObjectKey("Node", "", "n1")),
    ("cluster-scoped owner of a cluster-scoped dependent", ref("n1", kind="Node"), obj("n2", kind="Node"),
     ObjectKey("Node", "", "n1")),
    ("namespaced owner of a cluster-scoped dependent: unresolvable", ref(), obj("n2", kind="Node"), None),
    ("unknown kind: unresolvable", ref(kind="Backup"), obj(), None),
]


@pytest.mark.parametrize(("owner_ref", "dependent", "expected"), [r[1:] for r in KEYS], ids=[r[0] for r in KEYS])
def test_owner_key(owner_ref: OwnerReference, dependent: Resource, expected: ObjectKey | None) -> None:
    kind = REGISTRY.get(owner_ref.kind) if owner_ref.kind != "Backup" else None
    assert o.owner_key(owner_ref, dependent, kind) == expected


# -- what becomes of a dependent --

A, B = ref("a", "uid-a"), ref("b", "uid-b")

JUDGE = [
    # (name, dependent, owners' states, has dependents of its own, action, propagation, unlinked uids)
    ("no owners", obj(), {}, False, o.KEEP, None, set()),
    ("owner present", obj(owners=(A,)), {"uid-a": PRESENT}, False, o.KEEP, None, set()),
    ("owner gone", obj(owners=(A,)), {"uid-a": ABSENT}, False, o.DELETE, Propagation.BACKGROUND, set()),
    ("owner gone, has dependents: they go after it", obj(owners=(A,)), {"uid-a": ABSENT}, True, o.DELETE,
     Propagation.BACKGROUND, set()),
    ("already being deleted", obj(owners=(A,), deleting=True), {"uid-a": ABSENT}, False, o.KEEP, None, set()),
    ("one owner gone, another present: let go of the gone one", obj(owners=(A, B)),
     {"uid-a": ABSENT, "uid-b": PRESENT}, False, o.UNLINK, None, {"uid-a"}),
    ("both owners gone", obj(owners=(A, B)), {"uid-a": ABSENT, "uid-b": ABSENT}, False, o.DELETE,
     Propagation.BACKGROUND, set()),
    ("owner unresolvable: never concluded gone", obj(owners=(A,)), {"uid-a": UNRESOLVED}, False, o.KEEP, None,
     set()),
    ("owner state unknown to the caller counts as unresolvable", obj(owners=(A,)), {}, False, o.KEEP, None, set()),
    ("one gone, one unresolvable: let go of the gone one", obj(owners=(A, B)),
     {"uid-a": ABSENT, "uid-b": UNRESOLVED}, False, o.UNLINK, None, {"uid-a"}),
    ("owner deleted in the foreground", obj(owners=(A,)), {"uid-a": WAITING}, False, o.DELETE,
     Propagation.BACKGROUND, set()),
    ("owner deleted in the foreground, has dependents: foreground too", obj(owners=(A,)), {"uid-a": WAITING}, True,
     o.DELETE, Propagation.FOREGROUND, set()),
    ("one owner waiting, another present: let go of the waiting one", obj(owners=(A, B)),
     {"uid-a": WAITING, "uid-b": PRESENT}, False, o.UNLINK, None, {"uid-a"}),
    ("one owner waiting, the other gone", obj(owners=(A, B)), {"uid-a": WAITING, "uid-b": ABSENT}, False,
     o.DELETE, Propagation.BACKGROUND, set()),
]


@pytest.mark.parametrize(("dependent", "owners", "has_dependents", "action", "propagation", "unlink"),
                         [r[1:] for r in JUDGE], ids=[r[0] for r in JUDGE])
def test_judge(dependent: Resource, owners: dict[str, o.OwnerState], has_dependents: bool, action: str,
               propagation: Propagation | None, unlink: set[str]) -> None:
    verdict = o.judge(dependent, owners, has_dependents)
    assert (verdict.action, verdict.propagation, set(verdict.unlink)) == (action, propagation, unlink)
    assert verdict.reason


# -- what an owner being deleted does --

OWNER_UID = "uid-o"
BLOCKING = obj("blocker", owners=(ref("o", OWNER_UID, blockOwnerDeletion=True),))
LOOSE = obj("loose", owners=(ref("o", OWNER_UID),))
BLOCKING_GOING = obj("going", owners=(ref("o", OWNER_UID, blockOwnerDeletion=True),), deleting=True)


def owner(*finalizers: str, deleting: bool = True) -> Resource:
    return obj("o", OWNER_UID, deleting=deleting, finalizers=finalizers)


SETTLE = [
    # (name, owner, dependents, released finalizer or None (None: no step at all when step is False),
    #  unlinked names, enqueued names, a step at all)
    ("not being deleted", owner(FOREGROUND_DELETION, deleting=False), [BLOCKING], None, [], [], False),
    ("deleted, no collector finalizer", owner("persys.dev/container"), [BLOCKING], None, [], [], False),
    ("orphan: release every dependent, then the finalizer", owner(ORPHAN_FINALIZER), [BLOCKING, LOOSE],
     ORPHAN_FINALIZER, ["blocker", "loose"], [], True),
    ("orphan, no dependents", owner(ORPHAN_FINALIZER), [], ORPHAN_FINALIZER, [], [], True),
    ("foreground, a blocking dependent: wait, and have it deleted", owner(FOREGROUND_DELETION), [BLOCKING, LOOSE],
     None, [], ["blocker", "loose"], True),
    ("foreground, the blocking dependent is going: wait for it", owner(FOREGROUND_DELETION), [BLOCKING_GOING],
     None, [], [], True),
    ("foreground, only non-blocking dependents: done, they go after", owner(FOREGROUND_DELETION), [LOOSE],
     FOREGROUND_DELETION, [], ["loose"], True),
    ("foreground, no dependents left", owner(FOREGROUND_DELETION), [], FOREGROUND_DELETION, [], [], True),
    ("both finalizers: orphan first", owner(FOREGROUND_DELETION, ORPHAN_FINALIZER), [BLOCKING], ORPHAN_FINALIZER,
     ["blocker"], [], True),
]


@pytest.mark.parametrize(("subject", "dependents", "release", "unlinked", "enqueued", "acts"),
                         [r[1:] for r in SETTLE], ids=[r[0] for r in SETTLE])
def test_settle(subject: Resource, dependents: list[Resource], release: str | None, unlinked: list[str],
                enqueued: list[str], acts: bool) -> None:
    step = o.settle(subject, dependents)
    if not acts:
        assert step is None
        return
    assert step is not None and step.reason
    assert step.release == release
    assert [k.name for k in step.unlink] == unlinked
    assert [k.name for k in step.enqueue] == enqueued


def test_without_owners_keeps_the_others() -> None:
    dependent = obj(owners=(A, B))
    o.without_owners(dependent, frozenset({"uid-a"}))
    assert dependent.metadata.ownerReferences == [B]


# -- what a delete's propagation does to finalizers --

PROPAGATIONS = [
    ("background: no collector finalizer", [], Propagation.BACKGROUND, []),
    ("foreground", [], Propagation.FOREGROUND, [FOREGROUND_DELETION]),
    ("orphan", [], Propagation.ORPHAN, [ORPHAN_FINALIZER]),
    ("others' finalizers stay", ["persys.dev/container"], Propagation.FOREGROUND,
     ["persys.dev/container", FOREGROUND_DELETION]),
    ("a new policy replaces the last one", [FOREGROUND_DELETION], Propagation.ORPHAN, [ORPHAN_FINALIZER]),
    ("background drops an earlier policy", [ORPHAN_FINALIZER, "x.dev/y"], Propagation.BACKGROUND, ["x.dev/y"]),
]


@pytest.mark.parametrize(("before", "propagation", "after"), [r[1:] for r in PROPAGATIONS],
                         ids=[r[0] for r in PROPAGATIONS])
def test_with_propagation(before: list[str], propagation: Propagation, after: list[str]) -> None:
    assert with_propagation(before, propagation) == after


# -- metadata.ownerReferences as written by users --

GOOD = {"apiVersion": "persys.dev/v1", "kind": "Workload", "name": "a", "uid": "0f1e-22"}

INVALID = [
    ("not a list", {"a": 1}, "metadata.ownerReferences", "must be a list"),
    ("uid missing", [{**GOOD, "uid": ""}], "metadata.ownerReferences[0].uid", "required"),
    ("kind missing", [{k: v for k, v in GOOD.items() if k != "kind"}], "metadata.ownerReferences[0].kind",
     "required"),
    ("a namespace of its own", [{**GOOD, "namespace": "other"}], "metadata.ownerReferences[0].namespace",
     "own namespace"),
    ("two controllers", [{**GOOD, "controller": True}, {**GOOD, "name": "b", "uid": "9", "controller": True}],
     "metadata.ownerReferences", "at most one owner may be the controller"),
    ("the same owner twice", [GOOD, {**GOOD, "name": "b"}], "metadata.ownerReferences[1].uid", "listed twice"),
    ("not a name", [{**GOOD, "name": "A_B"}], "metadata.ownerReferences[0].name", ""),
    ("not a kind", [{**GOOD, "kind": "work load"}], "metadata.ownerReferences[0].kind", "must be a kind"),
    ("not a version", [{**GOOD, "apiVersion": "Persys/V1!"}], "metadata.ownerReferences[0].apiVersion",
     "must be a version"),
    ("controller not a boolean", [{**GOOD, "controller": "yes"}], "metadata.ownerReferences[0].controller",
     "must be a boolean"),
    ("unknown field", [{**GOOD, "owner": "me"}], "metadata.ownerReferences[0].owner", "unknown field"),
]


def parse(refs: Any) -> Resource:
    return REGISTRY.parse({"kind": "Workload", "metadata": {"name": "w", "ownerReferences": refs},
                           "spec": {"image": "persys/busybox:local"}})


@pytest.mark.parametrize(("refs", "field", "message"), [r[1:] for r in INVALID], ids=[r[0] for r in INVALID])
def test_invalid_owner_references_name_the_field(refs: Any, field: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse(refs)
    causes: list[Cause] = caught.value.causes
    assert any(c.field == field and message in c.message for c in causes), causes


def test_owner_references_round_trip() -> None:
    written = [{**GOOD, "controller": True, "blockOwnerDeletion": True}, {**GOOD, "kind": "Node", "name": "n1",
                                                                          "uid": "n-1"}]
    parsed = parse(written)
    assert parsed.metadata.ownerReferences[0] == OwnerReference("persys.dev/v1", "Workload", "a", "0f1e-22", True,
                                                                True)
    assert parsed.to_dict()["metadata"]["ownerReferences"] == written
    assert Resource.from_dict(parsed.to_dict()).metadata.ownerReferences == parsed.metadata.ownerReferences
