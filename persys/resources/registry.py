"""The registry of kinds: name, plural, short names, scope, schema and printer columns.

Store, API, CLI and informers look kinds up here and never name a kind in their code,
so a user-defined kind (a custom resource, like a Kubernetes CRD) is one ``register`` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from persys.errors import Cause, Invalid, NotFound
from persys.resources.model import API_VERSION, ObjectMeta, Resource, parse_owner_references
from persys.resources.schema import Schema, check_dns1123, validate

Column = tuple[str, Callable[[Resource], str]]
CrossCheck = Callable[[dict[str, Any]], list[Cause]]

# Kubernetes' rules: keys are qualified names (example.com/tier), label values short names or empty
LABELS: Schema = {"type": "map", "values": {"type": "string", "format": "labelvalue"}, "keyFormat": "labelkey"}
ANNOTATIONS: Schema = {"type": "map", "values": {"type": "string"}, "keyFormat": "labelkey"}
_METADATA_FIELDS = {
    "name", "namespace", "uid", "labels", "annotations", "generation", "resourceVersion",
    "creationTimestamp", "deletionTimestamp", "finalizers", "ownerReferences",
}


@dataclass
class Kind:
    """Everything Persys needs to store, serve and print one kind of object."""

    kind: str
    plural: str
    namespaced: bool
    spec_schema: Schema
    status_schema: Schema = field(default_factory=lambda: {"type": "object", "properties": {}})
    short_names: tuple[str, ...] = ()
    spec_field: str = "spec"  # Secrets keep their payload under `data`, as Kubernetes does
    cross_checks: tuple[CrossCheck, ...] = ()
    columns: tuple[Column, ...] = ()
    wide_columns: tuple[Column, ...] = ()
    lease_ttl: int | None = None  # objects stored on an etcd lease expire (Events)
    sensitive: bool = False  # never printed unless asked for explicitly (Secrets)
    status_subresource: bool = True
    server_fields: tuple[str, ...] = ()  # spec fields controllers set (nodeName): kept when a write leaves them empty

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def names(self) -> set[str]:
        return {self.kind.lower(), self.singular, self.plural, *self.short_names}

    def parse(self, data: Any) -> Resource:
        """Validate a user-written object (spec and metadata; status is ignored) into a Resource."""
        if not isinstance(data, dict):
            raise Invalid("object must be a mapping", causes=[Cause("", "must be a mapping")])
        causes: list[Cause] = []
        if data.get("apiVersion") not in (API_VERSION, None):
            causes.append(Cause("apiVersion", f"must be {API_VERSION}"))
        if data.get("kind") not in (self.kind, None):
            causes.append(Cause("kind", f"must be {self.kind}"))
        allowed = {"apiVersion", "kind", "metadata", self.spec_field, "status"}
        causes += [Cause(key, "unknown field") for key in data if key not in allowed]
        metadata = self._parse_metadata(data.get("metadata"), causes)
        spec_causes: list[Cause] = []
        spec = validate(self.spec_schema, data.get(self.spec_field) or {}, self.spec_field, spec_causes)
        if not spec_causes:
            for check in self.cross_checks:
                spec_causes += check(spec)
        causes += spec_causes
        if causes:
            label = f"{self.kind} {metadata.name!r}" if metadata.name else self.kind
            raise Invalid(f"{label} is invalid: " + "; ".join(f"{c.field}: {c.message}" for c in causes),
                          causes=causes)
        return Resource(kind=self.kind, metadata=metadata, spec=spec, status={})

    def parse_status(self, status: Any) -> dict[str, Any]:
        causes: list[Cause] = []
        out = validate(self.status_schema, status if status is not None else {}, "status", causes)
        if causes:
            raise Invalid(f"{self.kind} status is invalid: " + "; ".join(f"{c.field}: {c.message}" for c in causes),
                          causes=causes)
        return dict(out)

    def _parse_metadata(self, raw: Any, causes: list[Cause]) -> ObjectMeta:
        if not isinstance(raw, dict):
            causes.append(Cause("metadata.name", "required"))
            return ObjectMeta()
        causes += [Cause(f"metadata.{key}", "unknown field") for key in raw if key not in _METADATA_FIELDS]
        name = raw.get("name")
        if not name:
            causes.append(Cause("metadata.name", "required"))
        elif not isinstance(name, str):
            causes.append(Cause("metadata.name", "must be a string"))
        elif msg := check_dns1123(name):
            causes.append(Cause("metadata.name", msg))
        namespace = raw.get("namespace") or ""
        if self.namespaced:
            namespace = namespace or "default"
            if not isinstance(namespace, str):
                causes.append(Cause("metadata.namespace", "must be a string"))
            elif msg := check_dns1123(namespace):
                causes.append(Cause("metadata.namespace", msg))
        elif namespace:
            causes.append(Cause("metadata.namespace", f"{self.kind} is cluster-scoped: no namespace"))
        for key, schema in (("labels", LABELS), ("annotations", ANNOTATIONS)):
            validate(schema, raw.get(key) or {}, f"metadata.{key}", causes)
        meta = ObjectMeta.from_dict({k: v for k, v in raw.items()
                                     if k in _METADATA_FIELDS and k not in ("namespace", "ownerReferences")})
        meta.namespace = namespace if isinstance(namespace, str) else ""
        meta.ownerReferences = parse_owner_references(raw.get("ownerReferences"), causes)
        return meta

    def to_wire(self, obj: Resource) -> dict[str, Any]:
        """The JSON shape of an object of this kind (payload under ``spec_field``)."""
        data = obj.to_dict()
        if self.spec_field != "spec":
            data[self.spec_field] = data.pop("spec")
            data.pop("status", None)
        return data

    def from_wire(self, data: dict[str, Any], *, copy: bool = True) -> Resource:
        """Inverse of ``to_wire`` for already validated data (etcd, server answers).

        ``copy=False``: ``data`` is fresh from ``json.loads`` and the Resource may adopt its parts.
        """
        if self.spec_field != "spec":
            data = {**data, "spec": data.get(self.spec_field) or {}}
        return Resource.from_dict(data, copy=copy)


class Registry:
    """Kinds by every name a user may type: ``Workload``, ``workloads``, ``workload``, ``wl``."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}
        self._by_name: dict[str, Kind] = {}

    def register(self, kind: Kind) -> Kind:
        for name in kind.names | {kind.kind}:
            existing = self._by_name.get(name)
            if existing is not None and existing.kind != kind.kind:
                raise ValueError(f"name {name!r} of kind {kind.kind} is taken by {existing.kind}")
        self._kinds[kind.kind] = kind
        for name in kind.names | {kind.kind}:
            self._by_name[name] = kind
        return kind

    def get(self, name: str) -> Kind:
        """The kind called ``name`` (kind, plural, singular or short name, any case)."""
        kind = self._by_name.get(name) or self._by_name.get(name.lower())
        if kind is None:
            raise NotFound(f"unknown kind {name!r}; known: {', '.join(sorted(k.plural for k in self.all()))}")
        return kind

    def by_plural(self, plural: str) -> Kind:
        kind = self.get(plural)
        if kind.plural != plural:
            raise NotFound(f"unknown resource {plural!r}")
        return kind

    def all(self) -> list[Kind]:
        return list(self._kinds.values())

    def parse(self, data: Any) -> Resource:
        """Validate any manifest object by its ``kind`` field."""
        if not isinstance(data, dict):
            raise Invalid("each document must be a mapping", causes=[Cause("", "must be a mapping")])
        if not data.get("kind"):
            raise Invalid("kind is required", causes=[Cause("kind", "required")])
        try:
            kind = self.get(str(data["kind"]))
        except NotFound as e:
            raise Invalid(str(e), causes=[Cause("kind", e.message)]) from e
        return kind.parse(data)
