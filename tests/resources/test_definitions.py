"""ResourceDefinitions and the kinds they make, row by row, without a server: what a definition may say,
how objects of its kind are validated and defaulted, printer columns, and the registry's rules for names."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from persys.errors import Invalid, NotFound
from persys.resources import Registry
from persys.resources.columns import parse_json_path
from persys.resources.definitions import describe, from_description, kind_of
from persys.resources.kinds import default_registry
from persys.store.keys import kind_prefix, object_key
from tests.support.backup import DEFINITION, NAME, backup, definition

V1 = "spec.versions[0]"
TOP = f"{V1}.schema.openAPIV3Schema"
SPEC = f"{TOP}.properties.spec"


def with_version(**changes: Any) -> dict[str, Any]:
    out = definition()
    out["spec"]["versions"][0].update(changes)
    return out


def with_spec_schema(**changes: Any) -> dict[str, Any]:
    out = definition()
    out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].update(changes)
    return out


def with_field(name: str, schema: Any) -> dict[str, Any]:
    out = definition()
    out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][name] = schema
    return out


def causes(data: dict[str, Any], registry: Registry | None = None) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        (registry or default_registry()).parse(data)
    return {c.field: c.message for c in caught.value.causes}


BAD_DEFINITIONS = [  # (definition, field, part of the message)
    (definition(group="backup"), "spec.group", "at least one dot"),
    (definition(group="team.persys.dev"), "spec.group", "reserved"),
    (definition(group="-x.example.com"), "spec.group", "DNS-1123 subdomain"),
    (definition(names={"kind": "backup", "plural": "backups"}), "spec.names.kind", "UpperCamelCase"),
    (definition(names={"kind": "BackupList", "plural": "backups"}), "spec.names.kind", "not ending in List"),
    (definition(names={"kind": "Backup", "plural": "Backups"}), "spec.names.plural", "DNS-1123 label"),
    (definition(names={"kind": "Backup", "plural": "backups", "shortNames": ["b_k"]}),
     "spec.names.shortNames[0]", "DNS-1123 label"),
    (definition(names={"kind": "Backup", "plural": "namespaces"}), "spec.names.plural", "choose another"),
    (definition(names={"kind": "Backup"}), "spec.names.plural", "required"),
    (definition(scope="Global"), "spec.scope", "must be one of"),
    (definition(versions=[]), "spec.versions", "at least one version"),
    (with_version(storage=False), "spec.versions", "exactly one version must have storage: true, not 0"),
    (with_version(served=False), "spec.versions", "at least one version must have served: true"),
    (with_version(name="V1"), f"{V1}.name", "DNS-1123 label"),
    (with_version(schema={}), f"{V1}.schema.openAPIV3Schema", "required"),
    (with_version(schema={"openAPIV3Schema": {"type": "string"}}), TOP, "must be a schema of type object"),
    (with_version(subresources={"scale": {}}), f"{V1}.subresources.scale", "unknown field"),
    (with_version(additionalPrinterColumns=[{"name": "X", "type": "string", "jsonPath": "spec.x"}]),
     f"{V1}.additionalPrinterColumns[0].jsonPath", "must start with '.'"),
    (with_version(additionalPrinterColumns=[{"name": "X", "type": "string", "jsonPath": ".spec[?(@.x)]"}]),
     f"{V1}.additionalPrinterColumns[0].jsonPath", "only field names and [N] indexes"),
    (with_version(additionalPrinterColumns=[{"name": "X", "type": "color", "jsonPath": ".spec.x"}]),
     f"{V1}.additionalPrinterColumns[0].type", "must be one of"),
    (with_spec_schema(oneOf=[]), f"{SPEC}.oneOf", "unknown keyword"),
    (with_spec_schema(type="thing"), f"{SPEC}.type", "must be one of object"),
    (with_field("n", {"type": "integer", "minimum": "zero"}), f"{SPEC}.properties.n.minimum", "is not of type"),
    (with_field("n", {"type": "string", "pattern": "("}), f"{SPEC}.properties.n.pattern", "not a valid regular"),
    (with_field("n", {"type": "integer", "default": "seven"}), f"{SPEC}.properties.n.default", "is not of type"),
    (with_field("n", {"type": "integer", "nullable": "yes"}), f"{SPEC}.properties.n.nullable", "true or false"),
    (with_field("n", {"type": "array", "items": [{"type": "string"}]}), f"{SPEC}.properties.n.items", "one schema"),
    (with_field("n", {"type": "object", "properties": {}, "additionalProperties": True}),
     f"{SPEC}.properties.n.additionalProperties", "not be given together with properties"),
    (with_field("n", "string"), f"{SPEC}.properties.n", "must be a schema"),
]


@pytest.mark.parametrize(("data", "field", "message"), BAD_DEFINITIONS)
def test_bad_definitions_name_the_field(data: dict[str, Any], field: str, message: str) -> None:
    found = causes(data)
    assert field in found, found
    assert message in found[field]


def test_top_level_fields_and_the_name_rule() -> None:
    other_top = copy.deepcopy(DEFINITION)
    other_top["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["data"] = {"type": "object"}
    assert "spec and status only" in causes(other_top)[f"{TOP}.properties.data"]
    renamed = definition()
    renamed["metadata"]["name"] = "backups"
    assert causes(renamed) == {"metadata.name": f"must be {NAME} (<plural>.<group>)"}
    assert "DNS-1123 subdomain" in causes({**definition(), "metadata": {"name": "Backups.x"}})["metadata.name"]


def backup_kind(registry: Registry) -> None:
    registry.register(kind_of(registry.parse(definition())))


@pytest.mark.parametrize(("spec", "expected"), [  # a valid spec and what it is stored as (defaults applied)
    ({"source": "web"}, {"source": "web", "schedule": "@daily", "retention": {"days": 7}}),
    ({"source": "web", "retention": {}}, {"source": "web", "schedule": "@daily", "retention": {"days": 7}}),
    ({"source": "web", "retention": {"days": 0}, "target": None},
     {"source": "web", "schedule": "@daily", "retention": {"days": 0}, "target": None}),
    ({"source": "web", "options": {"deep": {"any": [1, {"x": None}]}}},
     {"source": "web", "schedule": "@daily", "retention": {"days": 7}, "options": {"deep": {"any": [1, {"x": None}]}}}),
])
def test_objects_are_defaulted(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    registry = default_registry()
    backup_kind(registry)
    obj = registry.parse({**backup("b"), "spec": spec})
    assert obj.spec == expected and obj.apiVersion == "backup.example.com/v1"


@pytest.mark.parametrize(("spec", "expected"), [  # an invalid spec and its causes, field by field
    ({"source": "web", "retention": {"days": -1}}, {"spec.retention.days": "-1 is less than the minimum of 0"}),
    ({"source": "web", "retention": {"days": 1.5}}, {"spec.retention.days": "1.5 is not of type 'integer'"}),
    ({"source": "web", "retention": {"days": True}}, {"spec.retention.days": "True is not of type 'integer'"}),
    ({"source": ""}, {"spec.source": "'' should be non-empty"}),
    ({}, {"spec.source": "required"}),
    ({"source": "web", "color": "red"}, {"spec.color": "unknown field"}),
    ({"source": "web", "retention": {"weeks": 2}}, {"spec.retention.weeks": "unknown field"}),
    ({"source": "web", "schedule": None}, {"spec.schedule": "None is not of type 'string'"}),
    ({"source": "web", "tags": ["a"] * 6}, {"spec.tags": f"{['a'] * 6!r} is too long"}),
    ({"source": "web", "options": {"n": float("nan")}},
     {"spec.options.n": "must be a finite number (JSON has no NaN or Infinity)"}),
    ({"source": "web", "options": {"n": 2**64}}, {"spec.options.n": "must fit in 64 bits"}),
])
def test_objects_are_validated_field_by_field(spec: dict[str, Any], expected: dict[str, str]) -> None:
    registry = default_registry()
    backup_kind(registry)
    assert causes({**backup("b"), "spec": spec}, registry) == expected


def test_api_version_status_and_versions() -> None:
    registry = default_registry()
    two = definition()
    v2 = copy.deepcopy(two["spec"]["versions"][0])
    v2.update(name="v2", storage=False)
    v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["source"]["maxLength"] = 3
    two["spec"]["versions"].append(v2)
    kind = kind_of(registry.parse(two))
    registry.register(kind)
    assert kind.versions == ("v1", "v2") and kind.api_version == "backup.example.com/v1"
    long_source = {**backup("b", source="database"), "apiVersion": "backup.example.com/v2"}
    assert causes(long_source, registry) == {"spec.source": "'database' is too long"}
    stored = registry.parse({**long_source, "spec": {"source": "db"}})
    assert stored.apiVersion == "backup.example.com/v1"  # stored (and read) in the storage version
    assert causes({**backup("b"), "apiVersion": "persys.dev/v1"}, registry) == {
        "apiVersion": "must be backup.example.com/v1 or backup.example.com/v2"}
    assert kind.parse_status({"phase": "Ready"}) == {"phase": "Ready"}
    with pytest.raises(Invalid, match="status.phase"):
        kind.parse_status({"phase": "Lost"})


def test_registry_names_are_unique_across_groups() -> None:
    registry = default_registry()
    backup_kind(registry)
    kind = registry.get("bk")
    for name in ("Backup", "backups", "backup", "backups.backup.example.com", "BACKUP.backup.example.com"):
        assert registry.get(name) is kind
    assert registry.served("backup.example.com", "v1", "backups") is kind
    with pytest.raises(NotFound, match="backup.example.com/v1: backups"):
        registry.served("backup.example.com", "v2", "backups")
    with pytest.raises(NotFound, match="served there: backups"):
        registry.served("backup.example.com", "v1", "things")
    with pytest.raises(NotFound):
        registry.served("persys.dev", "v1", "backups")
    clash = kind_of(registry.parse({**definition(group="other.example.com"),
                                    "metadata": {"name": "backups.other.example.com"}}))
    assert [(name, other.kind) for name, other in registry.clashes(clash)] == [
        ("Backup", "Backup"), ("backup", "Backup"), ("backups", "Backup"), ("bk", "Backup")]
    with pytest.raises(ValueError, match="taken by Backup"):
        registry.register(clash)
    registry.register(kind)  # the same kind again replaces itself
    registry.unregister("Backup")
    with pytest.raises(NotFound):
        registry.get("bk")


def test_keys_discovery_and_columns() -> None:
    registry = default_registry()
    backup_kind(registry)
    kind = registry.get("Backup")
    assert object_key(kind, "default", "b") == "/persys/registry/backup.example.com/backups/default/b"
    assert kind_prefix(kind) == "/persys/registry/backup.example.com/backups/"
    assert object_key(registry.get("Workload"), "default", "w") == "/persys/registry/workloads/default/w"
    assert object_key(registry.get("rd"), "", NAME) == f"/persys/registry/resourcedefinitions/{NAME}"
    seen = from_description(describe(kind))
    assert (seen.kind, seen.plural, seen.short_names, seen.namespaced, seen.api_version, seen.status_subresource) \
        == ("Backup", "backups", ("bk",), True, "backup.example.com/v1", True)
    obj = registry.parse(backup("b", retention={"days": 3}))
    obj.status = {"phase": "Ready"}
    assert [(header, cell(obj)) for header, cell in seen.columns][:4] == [
        ("NAME", "b"), ("SOURCE", "web"), ("DAYS", "3"), ("PHASE", "Ready")]
    assert parse_json_path(".status.conditions[0].type") == ("status", "conditions", 0, "type")
    assert parse_json_path("{.metadata.name}") == ("metadata", "name")
