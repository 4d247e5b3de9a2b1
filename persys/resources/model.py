"""Typed resource objects: ``metadata`` / ``spec`` / ``status``, the shape of every kind.

``ObjectMeta`` is typed field by field; ``spec`` and ``status`` stay dicts whose shape the
kind's schema guarantees, so that user-defined kinds need no Python class of their own.
Raw dicts appear only at the edges (etcd JSON, HTTP bodies) through ``from_dict``/``to_dict``.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NewType

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": self.apiVersion,
            "kind": self.kind,
            "metadata": self.metadata.to_dict(),
            "spec": deepcopy(self.spec),
            "status": deepcopy(self.status),
        }

    def copy(self) -> Resource:
        return Resource.from_dict(self.to_dict(), copy=False)  # to_dict already made the deep copies
