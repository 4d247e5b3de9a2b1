"""Typed resource objects: ``metadata`` / ``spec`` / ``status``, the shape of every kind.

``ObjectMeta`` is typed field by field; ``spec`` and ``status`` stay dicts whose shape the
kind's schema guarantees, so that user-defined kinds need no Python class of their own.
Raw dicts appear only at the edges (etcd JSON, HTTP bodies) through ``from_dict``/``to_dict``.

``metadata.ownerReferences`` name the objects an object belongs to (by kind, name and uid, in its
own namespace or cluster-scoped), so that the garbage collector deletes it once they are gone;
``parse_owner_references`` is their validation, shared by every kind.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NewType

from persys.errors import Cause
from persys.resources.schema import Schema, join, validate

API_VERSION = "persys.dev/v1"

Uid = NewType("Uid", str)


def now_iso() -> str:
    """The current time as RFC 3339 UTC, the format of every timestamp in a resource."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identifies one object: kind, namespace (empty for cluster-scoped kinds) and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


class Propagation(StrEnum):
    """What deleting an object does to its dependents (``DELETE …?propagationPolicy=``), as in Kubernetes."""

    BACKGROUND = "Background"  # the owner goes at once; the garbage collector deletes the dependents after
    FOREGROUND = "Foreground"  # the owner waits (FOREGROUND_DELETION) until its blocking dependents are gone
    ORPHAN = "Orphan"          # the dependents lose their reference to the owner (ORPHAN_FINALIZER) and stay


FOREGROUND_DELETION = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
GC_FINALIZERS = {Propagation.FOREGROUND: FOREGROUND_DELETION, Propagation.ORPHAN: ORPHAN_FINALIZER}
"""The finalizers the garbage collector handles, by the propagation that sets them."""


@dataclass(frozen=True)
class OwnerReference:
    """An object this one belongs to: looked up by kind and name in its namespace, matched by uid."""

    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool = False          # the one owner that manages this object (at most one)
    blockOwnerDeletion: bool = False  # a foreground deletion of the owner waits for this object

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OwnerReference:
        return cls(apiVersion=str(data.get("apiVersion") or ""), kind=str(data.get("kind") or ""),
                   name=str(data.get("name") or ""), uid=str(data.get("uid") or ""),
                   controller=bool(data.get("controller")), blockOwnerDeletion=bool(data.get("blockOwnerDeletion")))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"apiVersion": self.apiVersion, "kind": self.kind, "name": self.name, "uid": self.uid}
        if self.controller:
            out["controller"] = True
        if self.blockOwnerDeletion:
            out["blockOwnerDeletion"] = True
        return out


OWNER_REFERENCE: Schema = {"type": "object", "properties": {
    "apiVersion": {"type": "string", "pattern": r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z]([-a-z0-9]*[a-z0-9])?",
                   "patternMessage": "must be a version such as persys.dev/v1 or backup.example.com/v1"},
    "kind": {"type": "string", "pattern": "[A-Za-z][A-Za-z0-9]{0,62}",
             "patternMessage": "must be a kind such as Workload"},
    "name": {"type": "string", "format": "dns1123"},
    "uid": {"type": "string", "pattern": "[A-Za-z0-9-]{1,128}", "patternMessage": "must be the owner's uid"},
    "controller": {"type": "boolean"},
    "blockOwnerDeletion": {"type": "boolean"},
}, "required": ["apiVersion", "kind", "name", "uid"]}


def parse_owner_references(raw: Any, causes: list[Cause], path: str = "metadata.ownerReferences") -> \
        list[OwnerReference]:
    """Validated owner references: well-formed, each owner once, at most one ``controller: true``.

    An owner has no namespace of its own: it is in the dependent's namespace, or cluster-scoped
    (Kubernetes' rule, so that deleting a namespace can never leave a dependent pointing elsewhere).
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        causes.append(Cause(path, f"must be a list, not {type(raw).__name__}"))
        return []
    refs: list[OwnerReference] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where, before = join(path, i), len(causes)
        if isinstance(item, dict) and "namespace" in item:
            causes.append(Cause(join(where, "namespace"),
                                "an owner is in the object's own namespace or cluster-scoped: remove namespace"))
            item = {k: v for k, v in item.items() if k != "namespace"}
        ref = validate(OWNER_REFERENCE, item, where, causes)
        if len(causes) > before:
            continue
        if ref["uid"] in seen:
            causes.append(Cause(join(where, "uid"), f"owner {ref['uid']} is listed twice"))
        seen.add(ref["uid"])
        refs.append(OwnerReference.from_dict(ref))
    controllers = [ref.name for ref in refs if ref.controller]
    if len(controllers) > 1:
        causes.append(Cause(path, f"at most one owner may be the controller; {len(controllers)} are: "
                                  + ", ".join(controllers)))
    return refs


@dataclass
class ObjectMeta:
    name: str = ""
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    generation: int = 0
    resourceVersion: str = ""
    creationTimestamp: str = ""
    deletionTimestamp: str | None = None
    finalizers: list[str] = field(default_factory=list)
    ownerReferences: list[OwnerReference] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectMeta:
        return cls(
            name=str(data.get("name") or ""),
            namespace=str(data.get("namespace") or ""),
            uid=str(data.get("uid") or ""),
            labels=dict(data.get("labels") or {}),
            annotations=dict(data.get("annotations") or {}),
            generation=int(data.get("generation") or 0),
            resourceVersion=str(data.get("resourceVersion") or ""),
            creationTimestamp=str(data.get("creationTimestamp") or ""),
            deletionTimestamp=data.get("deletionTimestamp"),
            finalizers=list(data.get("finalizers") or []),
            ownerReferences=[OwnerReference.from_dict(r) for r in data.get("ownerReferences") or ()],
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        for key in ("uid", "resourceVersion", "creationTimestamp"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["generation"] = self.generation
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.deletionTimestamp:
            out["deletionTimestamp"] = self.deletionTimestamp
        if self.finalizers:
            out["finalizers"] = list(self.finalizers)
        if self.ownerReferences:
            out["ownerReferences"] = [ref.to_dict() for ref in self.ownerReferences]
        return out


@dataclass
class Resource:
    """One object of any registered kind."""

    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    apiVersion: str = API_VERSION

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.metadata.namespace, self.metadata.name)

    @property
    def resource_version(self) -> int:
        return int(self.metadata.resourceVersion or 0)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, copy: bool = True) -> Resource:
        """Build from an already validated dict (etcd JSON, API bodies after validation).

        ``copy=False`` adopts ``spec`` and ``status`` as they are instead of deep-copying them: for a
        dict nobody else holds (fresh from ``json.loads``), where the copy is most of the cost.
        """
        spec, status = data.get("spec") or {}, data.get("status") or {}
        return cls(
            kind=str(data.get("kind", "")),
            apiVersion=str(data.get("apiVersion", API_VERSION)),
            metadata=ObjectMeta.from_dict(data.get("metadata") or {}),
            spec=deepcopy(spec) if copy else spec,
            status=deepcopy(status) if copy else status,
        )

    def to_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """The object as plain data. ``copy=False`` shares ``spec`` and ``status`` with the object: for
        reading it only (comparing, encoding), which then costs no deep copy."""
        return {
            "apiVersion": self.apiVersion,
            "kind": self.kind,
            "metadata": self.metadata.to_dict(),
            "spec": deepcopy(self.spec) if copy else self.spec,
            "status": deepcopy(self.status) if copy else self.status,
        }

    def copy(self) -> Resource:
        return Resource.from_dict(self.to_dict(), copy=False)  # to_dict already made the deep copies
