"""The schemas of custom kinds: OpenAPI v3, as a Kubernetes CRD writes them, checked by ``jsonschema``.

A ResourceDefinition brings ``openAPIV3Schema`` for each version. ``schema_causes`` refuses one that
uses a keyword outside ``SUPPORTED``, a bad pattern, a default its own schema refuses, or anything
JSON Schema's meta-schema refuses, naming the path of each. Objects are then checked by
``jsonschema``'s Draft 4 validator (OpenAPI 3.0's schema object is Draft 4 with a few additions),
over a translation of the OpenAPI schema (``to_json_schema``): ``nullable`` becomes a ``null``
type, and an object whose schema lists its properties refuses the others by name, as the
built-in kinds do, unless it says ``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields``.

Persys applies each ``default`` before validating (Kubernetes does the same), reports every
error as a field cause (``spec.retention.days: -1 is less than the minimum of 0``), and refuses
non-finite numbers and integers beyond 64 bits whatever the schema says, like every kind.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from persys.errors import Cause
from persys.resources.schema import join, validate

SUPPORTED = frozenset({
    "type", "properties", "required", "enum", "pattern", "format", "minimum", "maximum", "minLength",
    "maxLength", "items", "additionalProperties", "default", "nullable", "description",
    "x-kubernetes-preserve-unknown-fields", "title", "example", "minItems", "maxItems",
})
TYPES = ("object", "array", "string", "integer", "number", "boolean")
PRESERVE = "x-kubernetes-preserve-unknown-fields"
_OPENAPI_ONLY = ("nullable", PRESERVE, "example")  # meaningless to JSON Schema: dropped by the translation
_MESSAGE_MAX = 300
ANY_OBJECT: dict[str, Any] = {"type": "object", PRESERVE: True}


def field_path(path: str, steps: Iterable[str | int]) -> str:
    """``path`` followed by ``steps`` as Persys writes fields: ``spec.items[0].name``."""
    for step in steps:
        path = join(path, step)
    return path


def to_json_schema(schema: dict[str, Any], *, openapi: bool = False) -> dict[str, Any]:
    """The JSON Schema (Draft 4) that checks what the OpenAPI v3 ``schema`` describes.

    ``openapi``: stay OpenAPI v3 (for ``/openapi.json``), only closing the objects Persys closes.
    """
    out = {key: value for key, value in schema.items() if openapi or key not in _OPENAPI_ONLY}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: to_json_schema(sub, openapi=openapi) if isinstance(sub, dict) else sub
                             for name, sub in schema["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = to_json_schema(schema[key], openapi=openapi)
    if schema.get("nullable") is True and not openapi:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object and "additionalProperties" not in schema and schema.get(PRESERVE) is not True:
        out["additionalProperties"] = False
    return out


def schema_causes(schema: Any, path: str) -> list[Cause]:
    """What is wrong with the OpenAPI v3 ``schema`` of a definition, each cause under ``path``."""
    causes: list[Cause] = []
    _check_node(schema, path, causes)
    if causes:
        return causes
    meta = Draft4Validator(Draft4Validator.META_SCHEMA)
    for error in meta.iter_errors(to_json_schema(schema)):
        causes.append(Cause(field_path(path, error.absolute_path), _short(error.message)))
    if not causes:
        _check_defaults(schema, path, causes)
    return causes


def _check_node(node: Any, path: str, causes: list[Cause]) -> None:
    if not isinstance(node, dict):
        causes.append(Cause(path, "must be a schema (a mapping)"))
        return
    causes += [Cause(join(path, key), "unknown keyword") for key in node if key not in SUPPORTED]
    if "type" in node and node["type"] not in TYPES:
        causes.append(Cause(join(path, "type"), f"must be one of {', '.join(TYPES)}"))
    for key in ("nullable", PRESERVE):
        if key in node and not isinstance(node[key], bool):
            causes.append(Cause(join(path, key), "must be true or false"))
    if isinstance(node.get("pattern"), str):
        try:
            re.compile(node["pattern"])
        except re.error as e:
            causes.append(Cause(join(path, "pattern"), f"is not a valid regular expression: {e}"))
    if "properties" in node and "additionalProperties" in node:
        causes.append(Cause(join(path, "additionalProperties"), "must not be given together with properties"))
    properties = node.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            _check_node(sub, join(join(path, "properties"), name), causes)
    if isinstance(node.get("items"), dict):
        _check_node(node["items"], join(path, "items"), causes)
    elif "items" in node:
        causes.append(Cause(join(path, "items"), "must be one schema (a mapping)"))
    if isinstance(node.get("additionalProperties"), dict):
        _check_node(node["additionalProperties"], join(path, "additionalProperties"), causes)


def _check_defaults(node: dict[str, Any], path: str, causes: list[Cause]) -> None:
    """Each ``default`` must pass its own schema, or every object would be refused for it."""
    if "default" in node:
        for error in _validator(node).iter_errors(node["default"]):
            causes.append(Cause(join(path, "default"), _short(error.message)))
    for name, sub in (node.get("properties") or {}).items():
        _check_defaults(sub, join(join(path, "properties"), name), causes)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _check_defaults(node[key], join(path, key), causes)


def _validator(schema: dict[str, Any]) -> Draft4Validator:
    return Draft4Validator(to_json_schema(schema), format_checker=Draft4Validator.FORMAT_CHECKER)


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """``value`` with the defaults of ``schema`` filled in where fields are absent (``value`` is changed)."""
    if isinstance(value, dict):
        properties: dict[str, Any] = schema.get("properties") or {}
        for name, sub in properties.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = with_defaults(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                if name not in properties:
                    value[name] = with_defaults(extra, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [with_defaults(schema["items"], item) for item in value]
    return value


@dataclass
class PartSchema:
    """The schema of one part (spec or status) of a custom kind's objects, ready to check values."""

    schema: dict[str, Any]  # OpenAPI v3, as the definition wrote it
    validator: Draft4Validator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.validator = _validator(self.schema)

    def check(self, value: Any, path: str, causes: list[Cause]) -> Any:
        """``value`` with defaults applied; a cause appended for every error, naming its field."""
        value = with_defaults(self.schema, copy.deepcopy(value))
        before = len(causes)
        validate({"type": "any"}, value, path, causes)  # finite numbers, 64-bit integers
        if len(causes) > before:
            return value
        found: list[Cause] = []
        for error in self.validator.iter_errors(value):
            found += error_causes(error, path)
        causes += sorted(dict.fromkeys(found), key=lambda c: c.field)
        return value


def error_causes(error: ValidationError, path: str) -> list[Cause]:
    """A jsonschema error as Persys field causes: ``required`` and unknown fields name the field itself."""
    where = field_path(path, error.absolute_path)
    instance = error.instance
    required = error.validator_value if isinstance(error.validator_value, list) else []
    if error.validator == "required" and isinstance(instance, dict):  # one error per missing field; deduplicated
        return [Cause(join(where, name), "required") for name in required if name not in instance]
    if error.validator == "additionalProperties" and isinstance(instance, dict) and isinstance(error.schema, dict):
        known = error.schema.get("properties") or {}
        return [Cause(join(where, name), "unknown field") for name in instance if name not in known]
    return [Cause(where, _short(error.message))]


def _short(message: str) -> str:
    return message if len(message) <= _MESSAGE_MAX else message[: _MESSAGE_MAX - 1] + "…"
