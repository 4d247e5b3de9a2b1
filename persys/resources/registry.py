"""The registry of kinds: group, version, name, plural, short names, scope, schema and printer columns.

Store, API, CLI and informers look kinds up here and never name a kind in their code,
so a user-defined kind (a custom resource, like a Kubernetes CRD) is one ``register`` call.
Kinds may be registered and unregistered while a process runs (an API server serving a
ResourceDefinition as soon as it is stored), so every name a kind answers to is unique in a
registry: ``register`` refuses a kind whose kind, plural, singular or short names another kind
already has, whatever its group. The built-in kinds are in ``persys.dev/v1``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from persys.errors import Cause, Invalid, NotFound
from persys.resources.columns import PrinterColumn
from persys.resources.model import API_VERSION, ObjectMeta, Resource, parse_owner_references
from persys.resources.schema import Schema, check_dns1123, validate

Column = tuple[str, Callable[[Resource], str]]
CrossCheck = Callable[[dict[str, Any]], list[Cause]]
ObjectCheck = Callable[[Resource], list[Cause]]
NameCheck = Callable[[str], str | None]
CORE_GROUP, _, CORE_VERSION = API_VERSION.partition("/")

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
    group: str = CORE_GROUP
    version: str = CORE_VERSION  # objects are stored and answered in this version
    served_versions: tuple[str, ...] = ()  # the versions requests may name; () means only ``version``
    singular_name: str = ""  # "" means the kind in lower case
    name_check: NameCheck = check_dns1123  # what metadata.name must be
    object_checks: tuple[ObjectCheck, ...] = ()  # checks that need metadata too, after the spec is valid
    printer_columns: tuple[PrinterColumn, ...] = ()  # declared columns (custom kinds), told to clients by discovery
    description: str = ""  # what an object of this kind is (``persys explain``, /openapi.json)

    @property
    def singular(self) -> str:
        return self.singular_name or self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def versions(self) -> tuple[str, ...]:
        return self.served_versions or (self.version,)

    @property
    def builtin(self) -> bool:
        return self.group == CORE_GROUP

    @property
    def names(self) -> set[str]:
        """Every name a user may type for this kind; ``kind.group`` forms too (``backups.backup.example.com``)."""
        short = {self.kind.lower(), self.singular, self.plural, *self.short_names}
        return short | {f"{name}.{self.group}" for name in (self.kind.lower(), self.singular, self.plural)}

    def check_spec(self, value: Any, version: str, causes: list[Cause]) -> Any:
        """``value`` (the spec) validated by the schema of ``version``, defaults applied; causes appended."""
        return validate(self.spec_schema, value, self.spec_field, causes)

    def check_status(self, value: Any, version: str, causes: list[Cause]) -> Any:
        """Like ``check_spec`` for the status."""
        return validate(self.status_schema, value, "status", causes)

    def openapi_part(self, part: str) -> dict[str, Any] | None:
        """The OpenAPI schema of ``spec`` or ``status`` when the kind brings its own (custom kinds), else None."""
        return None

    def parse(self, data: Any) -> Resource:
        """Validate a user-written object (spec and metadata; status is ignored) into a Resource."""
        if not isinstance(data, dict):
            raise Invalid("object must be a mapping", causes=[Cause("", "must be a mapping")])
        causes: list[Cause] = []
        version = self._version_of(data.get("apiVersion"), causes)
        if data.get("kind") not in (self.kind, None):
            causes.append(Cause("kind", f"must be {self.kind}"))
        allowed = {"apiVersion", "kind", "metadata", self.spec_field, "status"}
        causes += [Cause(key, "unknown field") for key in data if key not in allowed]
        metadata = self._parse_metadata(data.get("metadata"), causes)
        spec_causes: list[Cause] = []
        spec = self.check_spec(data.get(self.spec_field) or {}, version, spec_causes)
        if not spec_causes:
            for check in self.cross_checks:
                spec_causes += check(spec)
        causes += spec_causes
        obj = Resource(kind=self.kind, metadata=metadata, spec=spec, status={}, apiVersion=self.api_version)
        if not causes:
            for object_check in self.object_checks:
                causes += object_check(obj)
        if causes:
            label = f"{self.kind} {metadata.name!r}" if metadata.name else self.kind
            raise Invalid(f"{label} is invalid: " + "; ".join(f"{c.field}: {c.message}" for c in causes),
                          causes=causes)
        return obj

    def _version_of(self, api_version: Any, causes: list[Cause] | None) -> str:
        """The served version an object's ``apiVersion`` names (none given: the stored version); another
        ``apiVersion`` is a cause, or without ``causes`` (status writes, which never checked it) ignored."""
        group, _, version = str(api_version).rpartition("/")
        if group == self.group and version in self.versions:
            return version
        if api_version is not None and causes is not None:
            causes.append(Cause("apiVersion", "must be " + " or ".join(f"{self.group}/{v}" for v in self.versions)))
        return self.version

    def parse_status(self, status: Any, api_version: Any = None) -> dict[str, Any]:
        """Validate a status written through the status subresource (in the version ``api_version`` names)."""
        causes: list[Cause] = []
        version = self._version_of(api_version, None)
        out = self.check_status(status if status is not None else {}, version, causes)
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
        elif msg := self.name_check(name):
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
        """The JSON shape of an object of this kind (payload under ``spec_field``). It shares the spec and
        status with ``obj`` (no deep copy: most callers only encode it); change only its top-level keys."""
        data = obj.to_dict(copy=False)
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
        obj = Resource.from_dict(data, copy=copy)
        obj.apiVersion = self.api_version  # no conversion between versions: an object reads as the stored version
        return obj


class Registry:
    """Kinds by every name a user may type: ``Workload``, ``workloads``, ``wl``, ``workloads.persys.dev``."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}
        self._by_name: dict[str, Kind] = {}

    def clashes(self, kind: Kind) -> list[tuple[str, Kind]]:
        """(name, other kind) for each name of ``kind`` another kind answers to (the same kind again: none)."""
        found = []
        for name in sorted(kind.names | {kind.kind}):
            existing = self._by_name.get(name)
            if existing is not None and (existing.group, existing.kind) != (kind.group, kind.kind):
                found.append((name, existing))
        return found

    def register(self, kind: Kind) -> Kind:
        """Add ``kind``, or replace the kind of the same group and name; ValueError when a name is taken."""
        for name, existing in self.clashes(kind):
            raise ValueError(f"name {name!r} of kind {kind.kind} is taken by {existing.kind} ({existing.group})")
        self.unregister(kind.kind)
        self._kinds[kind.kind] = kind
        for name in kind.names | {kind.kind}:
            self._by_name[name] = kind
        return kind

    def unregister(self, kind_name: str) -> None:
        """Forget the kind called ``kind_name`` and every name it answered to (nothing when unknown)."""
        kind = self._kinds.pop(kind_name, None)
        if kind is not None:
            self._by_name = {name: k for name, k in self._by_name.items() if k is not kind}

    def get(self, name: str) -> Kind:
        """The kind called ``name`` (kind, plural, singular or short name, optionally ``.group``; any case)."""
        kind = self._by_name.get(name) or self._by_name.get(name.lower())
        if kind is None:
            raise NotFound(f"unknown kind {name!r}; known: {', '.join(sorted(k.plural for k in self.all()))}")
        return kind

    def by_plural(self, plural: str) -> Kind:
        kind = self.get(plural)
        if kind.plural != plural:
            raise NotFound(f"unknown resource {plural!r}")
        return kind

    def served(self, group: str, version: str, plural: str) -> Kind:
        """The kind served at ``/apis/{group}/{version}/{plural}``; NotFound listing what is served."""
        kind = self._by_name.get(plural)
        if kind is not None and kind.plural == plural and kind.group == group and version in kind.versions:
            return kind
        here = [k.plural for k in self.all() if k.group == group and version in k.versions]
        if here:
            raise NotFound(f"unknown resource {plural!r} in {group}/{version}; served there: {', '.join(sorted(here))}")
        raise NotFound(f"{group}/{version} is not served (no kind {plural!r}); served kinds: {self.describe()}")

    def describe(self) -> str:
        """Every served kind as ``group/version: plurals``, one group version after another."""
        by_version: dict[str, list[str]] = {}
        for kind in self.all():
            for version in kind.versions:
                by_version.setdefault(f"{kind.group}/{version}", []).append(kind.plural)
        return "; ".join(f"{gv}: {', '.join(sorted(plurals))}" for gv, plurals in sorted(by_version.items()))

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
