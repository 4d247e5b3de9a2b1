"""``ResourceDefinition``, the kind that defines kinds (Persys's CRD), and the custom kinds it makes.

A definition names a group (``backup.example.com``), the names of its kind (kind, plural,
singular, short names), a scope and versions, each with an OpenAPI v3 schema, an optional status
subresource and printer columns. Everything a definition says is checked here, where the user
sees it: a bad group, a bad name, a keyword the schema language lacks, not exactly one storage
version, a printer column path outside the supported subset; its name must be ``<plural>.<group>``,
as in Kubernetes, so a group and plural are defined once. Clashes with other kinds need the
registry and the stored definitions: the API checks those (``persys.api.definitions``).

``kind_of`` turns a stored definition into a ``CustomKind``, which validates objects with the
schema of the version they name (``persys.resources.customschema``) and is stored and answered
in the storage version (no conversion between versions: Kubernetes' ``None`` strategy).
``describe``/``from_description`` are the kind as the discovery route tells it to clients, who
need names, scope and columns but leave validation to the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from persys.errors import Cause
from persys.resources.columns import COLUMN_TYPES, PrinterColumn, age, declared_columns, parse_json_path
from persys.resources.customschema import ANY_OBJECT, PRESERVE, PartSchema, schema_causes, to_json_schema
from persys.resources.model import Resource
from persys.resources.names import SUBDOMAIN_MAX, check_dns1123
from persys.resources.registry import CORE_GROUP, Kind
from persys.resources.schema import Schema, join

DEFINITION_FINALIZER = "persys.dev/definition-cleanup"  # held until the kind's objects are gone
_KIND_NAME = re.compile(r"[A-Z][A-Za-z0-9]{0,62}")
_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_STRING: Schema = {"type": "string"}
_ANY_SCHEMA: Schema = {"type": "any"}

DEFINITION_SPEC: Schema = {"type": "object", "properties": {
    "group": _STRING,
    "names": {"type": "object", "properties": {
        "kind": _STRING, "plural": _STRING, "singular": _STRING, "shortNames": {"type": "array", "items": _STRING},
    }, "required": ["kind", "plural"]},
    "scope": {"type": "string", "enum": ["Namespaced", "Cluster"], "default": "Namespaced"},
    "versions": {"type": "array", "items": {"type": "object", "properties": {
        "name": _STRING,
        "served": {"type": "boolean", "default": True},
        "storage": {"type": "boolean", "default": False},
        "schema": {"type": "object", "properties": {"openAPIV3Schema": _ANY_SCHEMA}, "required": ["openAPIV3Schema"]},
        "subresources": {"type": "object", "properties": {"status": {"type": "object", "properties": {}}}},
        "additionalPrinterColumns": {"type": "array", "items": {"type": "object", "properties": {
            "name": _STRING, "type": {"type": "string", "enum": list(COLUMN_TYPES)}, "jsonPath": _STRING,
            "description": _STRING, "priority": {"type": "integer", "minimum": 0, "maximum": 10},
        }, "required": ["name", "type", "jsonPath"]}},
    }, "required": ["name", "schema"]}},
}, "required": ["group", "names", "versions"]}


def check_subdomain(value: str) -> str | None:
    """None when ``value`` is a DNS-1123 subdomain (labels joined by dots), else the message."""
    if len(value) <= SUBDOMAIN_MAX and all(check_dns1123(label) is None for label in value.split(".")):
        return None
    return "must be a DNS-1123 subdomain: DNS labels joined by '.', at most 253 characters"


def check_group(value: str) -> str | None:
    """None when ``value`` may be the group of a custom kind (``backup.example.com``)."""
    if msg := check_subdomain(value):
        return msg
    if "." not in value:
        return "must be a DNS subdomain with at least one dot, e.g. backup.example.com"
    if value == CORE_GROUP or value.endswith("." + CORE_GROUP):
        return f"{CORE_GROUP} is reserved for the built-in kinds"
    return None


def _names_causes(names: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if not _KIND_NAME.fullmatch(names["kind"]) or names["kind"].endswith("List"):
        causes.append(Cause("spec.names.kind", "must be UpperCamelCase letters and digits (e.g. Backup), "
                                               "at most 63, not ending in List"))
    labels = [("plural", names["plural"]), ("singular", names.get("singular") or names["kind"].lower())]
    labels += [(f"shortNames[{i}]", short) for i, short in enumerate(names.get("shortNames") or [])]
    for where, value in labels:
        if msg := check_dns1123(value):
            causes.append(Cause(f"spec.names.{where}", msg))
    if names["plural"] == "namespaces":
        causes.append(Cause("spec.names.plural", "namespaces is part of every namespaced path: choose another"))
    return causes


def _version_causes(version: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if msg := check_dns1123(version["name"]):
        causes.append(Cause(join(path, "name"), msg))
    where = join(path, "schema.openAPIV3Schema")
    top = version["schema"]["openAPIV3Schema"]
    if not isinstance(top, dict) or top.get("type") != "object":
        return causes + [Cause(where, "must be a schema of type object")]
    for name, sub in (top.get("properties") or {}).items():
        if name not in _TOP_LEVEL:
            causes.append(Cause(join(where, f"properties.{name}"), "objects have apiVersion, kind, metadata, "
                                                                    "spec and status only"))
        elif name == "metadata" and isinstance(sub, dict) and set(sub) - {"type", "description"}:
            causes.append(Cause(join(where, "properties.metadata"), "metadata is Persys's: only type: object"))
    causes += schema_causes(top, where)
    seen: set[str] = set()
    for i, column in enumerate(version.get("additionalPrinterColumns") or []):
        at = join(join(path, "additionalPrinterColumns"), i)
        if not column["name"] or column["name"] in seen:
            causes.append(Cause(join(at, "name"), "must be given, once per version"))
        seen.add(column["name"])
        try:
            parse_json_path(column["jsonPath"])
        except ValueError as e:
            causes.append(Cause(join(at, "jsonPath"), str(e)))
    return causes


def definition_causes(spec: dict[str, Any]) -> list[Cause]:
    """Everything wrong with a (structurally valid) definition spec, each cause naming its field."""
    causes: list[Cause] = []
    if msg := check_group(spec["group"]):
        causes.append(Cause("spec.group", msg))
    causes += _names_causes(spec["names"])
    versions = spec["versions"]
    if not versions:
        return causes + [Cause("spec.versions", "at least one version is required")]
    names = [v["name"] for v in versions]
    causes += [Cause(f"spec.versions[{i}].name", f"{n!r} is given twice") for i, n in enumerate(names)
               if n in names[:i]]
    storage = [v["name"] for v in versions if v["storage"]]
    if len(storage) != 1:
        causes.append(Cause("spec.versions", f"exactly one version must have storage: true, not {len(storage)}"))
    if not any(v["served"] for v in versions):
        causes.append(Cause("spec.versions", "at least one version must have served: true"))
    for i, version in enumerate(versions):
        causes += _version_causes(version, f"spec.versions[{i}]")
    return causes


def _name_causes(definition: Resource) -> list[Cause]:
    expected = f"{definition.spec['names']['plural']}.{definition.spec['group']}"
    if definition.metadata.name != expected:
        return [Cause("metadata.name", f"must be {expected} (<plural>.<group>)")]
    return []


@dataclass
class CustomKind(Kind):
    """A kind a ResourceDefinition defines: validated by the schema of each version (``PartSchema``)."""

    parts: dict[str, dict[str, PartSchema]] = field(default_factory=dict)  # version -> spec/status -> schema
    definition: str = ""  # the ResourceDefinition's name

    def check_spec(self, value: Any, version: str, causes: list[Cause]) -> Any:
        return self.parts[version]["spec"].check(value, "spec", causes)

    def check_status(self, value: Any, version: str, causes: list[Cause]) -> Any:
        return self.parts[version]["status"].check(value, "status", causes)

    def openapi_part(self, part: str) -> dict[str, Any] | None:
        return to_json_schema(self.parts[self.version][part].schema, openapi=True)


def _part(top: dict[str, Any], name: str) -> PartSchema:
    """The schema of ``spec`` or ``status`` within a version's whole-object schema."""
    sub = (top.get("properties") or {}).get(name)
    if isinstance(sub, dict):
        return PartSchema(sub)
    return PartSchema(ANY_OBJECT if top.get(PRESERVE) is True else {"type": "object"})


def kind_of(definition: Resource) -> CustomKind:
    """The kind a stored (valid) ResourceDefinition defines."""
    spec = definition.spec
    names, versions = spec["names"], spec["versions"]
    storage = next(v for v in versions if v.get("storage"))
    declared = tuple(PrinterColumn.from_dict(c) for c in storage.get("additionalPrinterColumns") or [])
    columns, wide = declared_columns(declared)
    parts = {v["name"]: {part: _part(v["schema"]["openAPIV3Schema"], part) for part in ("spec", "status")}
             for v in versions}
    return CustomKind(
        kind=names["kind"], plural=names["plural"], namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        spec_schema=_ANY_SCHEMA, status_schema=_ANY_SCHEMA, short_names=tuple(names.get("shortNames") or ()),
        singular_name=names.get("singular") or "", group=spec["group"], version=storage["name"],
        served_versions=tuple(v["name"] for v in versions if v.get("served", True)),
        status_subresource="status" in (storage.get("subresources") or {}),
        printer_columns=declared, columns=columns, wide_columns=wide, parts=parts,
        description=str(storage["schema"]["openAPIV3Schema"].get("description") or ""),
        definition=definition.metadata.name)


def describe(kind: Kind) -> dict[str, Any]:
    """A kind as the discovery route (``GET /apis``) tells it."""
    return {"kind": kind.kind, "group": kind.group, "version": kind.version, "versions": list(kind.versions),
            "plural": kind.plural, "singular": kind.singular, "shortNames": list(kind.short_names),
            "namespaced": kind.namespaced, "subresources": ["status"] if kind.status_subresource else [],
            "printerColumns": [c.to_dict() for c in kind.printer_columns]}


def from_description(data: dict[str, Any]) -> Kind:
    """A client's view of a kind ``describe`` told: names, scope and columns; the server validates."""
    declared = tuple(PrinterColumn.from_dict(c) for c in data.get("printerColumns") or [])
    columns, wide = declared_columns(declared)
    return Kind(kind=str(data["kind"]), plural=str(data["plural"]), namespaced=bool(data["namespaced"]),
                spec_schema=_ANY_SCHEMA, status_schema=_ANY_SCHEMA,
                short_names=tuple(data.get("shortNames") or ()), singular_name=str(data.get("singular") or ""),
                group=str(data["group"]), version=str(data["version"]),
                served_versions=tuple(data.get("versions") or ()),
                status_subresource="status" in (data.get("subresources") or []),
                printer_columns=declared, columns=columns, wide_columns=wide)


def _versions(obj: Resource) -> str:
    return ",".join(v["name"] + ("*" if v.get("storage") else "") for v in obj.spec.get("versions") or [])


RESOURCE_DEFINITION = Kind(
    kind="ResourceDefinition", plural="resourcedefinitions", namespaced=False, short_names=("rd",),
    spec_schema=DEFINITION_SPEC, cross_checks=(definition_causes,), object_checks=(_name_causes,),
    name_check=check_subdomain, status_subresource=False,
    description="Defines a custom kind: its group, names, scope and versions, each with an OpenAPI v3 schema.",
    columns=(
        ("NAME", lambda o: o.metadata.name),
        ("KIND", lambda o: str(o.spec["names"]["kind"])),
        ("VERSIONS", _versions),
        ("SCOPE", lambda o: str(o.spec.get("scope", ""))),
        ("AGE", age),
    ),
)
