"""Owner and child, as pure functions: the reference a child carries, the index, drift.

An operator's children (what ``ctx.ensure`` writes) carry one ``metadata.ownerReferences``
entry with ``controller: true`` naming their owner by kind, name and uid. That one reference
does three jobs: the garbage collector deletes the child when the owner is gone, the child's
informer indexes it by the owner's uid (``ctx.owned``), and a change to the child enqueues the
owner (``owner_keys``), whose reconcile then undoes any drift. ``drifted`` decides what counts
as drift: the spec (with the kind's defaults applied, and server-set fields the operator left
empty ignored), labels, annotations and the controller reference; never status or finalizers,
which belong to whoever manages the child.
"""

from __future__ import annotations

from collections.abc import Iterable

from persys.resources.model import ObjectKey, OwnerReference, Resource
from persys.resources.registry import Kind, Registry

OWNER_INDEX = "persys.operator/controller-uid"


def owner_reference(owner: Resource) -> OwnerReference:
    """The reference a child of ``owner`` carries: its controller, blocking the owner's foreground deletion."""
    return OwnerReference(apiVersion=owner.apiVersion, kind=owner.kind, name=owner.metadata.name,
                          uid=owner.metadata.uid, controller=True, blockOwnerDeletion=True)


def controller_of(obj: Resource) -> OwnerReference | None:
    """The owner reference marked ``controller``, if any."""
    return next((ref for ref in obj.metadata.ownerReferences if ref.controller), None)


def controller_uid(obj: Resource) -> list[str]:
    """Index function: the uid of the object's controller (none: not indexed)."""
    ref = controller_of(obj)
    return [ref.uid] if ref is not None else []


def owner_keys(registry: Registry, owner_kind: str, objects: Iterable[Resource | None]) -> list[ObjectKey]:
    """The keys of the ``owner_kind`` objects controlling ``objects`` (a child before and after a change)."""
    kind = registry.get(owner_kind)
    keys: list[ObjectKey] = []
    for obj in objects:
        ref = controller_of(obj) if obj is not None else None
        if obj is None or ref is None or ref.kind != kind.kind:
            continue
        key = ObjectKey(kind.kind, obj.metadata.namespace if kind.namespaced else "", ref.name)
        if key not in keys:
            keys.append(key)
    return keys


def adopt(child: Resource, owner: Resource, current: Resource | None) -> Resource:
    """``child`` as ``owner`` wants it: in the owner's namespace, controlled by it, keeping other owners."""
    wanted = child.copy()
    if owner.metadata.namespace and wanted.metadata.namespace != owner.metadata.namespace:
        wanted.metadata.namespace = owner.metadata.namespace  # owners are in their dependents' namespace
    others = [ref for ref in (current.metadata.ownerReferences if current else []) if not ref.controller]
    wanted.metadata.ownerReferences = [owner_reference(owner), *others]
    if current is not None:
        wanted.metadata.resourceVersion = current.metadata.resourceVersion
        wanted.metadata.finalizers = list(dict.fromkeys([*wanted.metadata.finalizers, *current.metadata.finalizers]))
    return wanted


def foreign_controller(current: Resource, owner: Resource) -> OwnerReference | None:
    """Another owner's controller reference on ``current`` (an owner recreated under its name is not another)."""
    ref = controller_of(current)
    if ref is None or (ref.kind == owner.kind and ref.name == owner.metadata.name):
        return None
    return ref


def drifted(kind: Kind, wanted: Resource, current: Resource) -> bool:
    """Whether ``current`` differs from ``wanted`` in anything the operator declared."""
    spec = dict(current.spec)
    for name in kind.server_fields:  # set by a controller (nodeName): not drift unless the operator names one
        if not wanted.spec.get(name):
            spec.pop(name, None)
    declared = {k: v for k, v in wanted.spec.items() if not (k in kind.server_fields and not v)}
    meta, have = wanted.metadata, current.metadata
    return (declared != spec or meta.labels != have.labels or meta.annotations != have.annotations
            or controller_of(current) != controller_of(wanted))
