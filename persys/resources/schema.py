"""A small structural schema language, and the validator that names every bad field.

Schemas are plain dicts (a subset of OpenAPI v3) so that user-defined kinds can bring
their own: ``type`` (object, string, integer, number, boolean, array, map, any),
``properties``/``required`` for objects, ``values`` for maps, ``items`` for arrays,
``enum``, ``pattern``, ``minimum``/``maximum``, ``format`` (dns1123, cpu, memory,
labelkey), ``default`` and ``nullable``. Unknown object fields are rejected by name.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from persys.errors import Cause
from persys.resources.quantity import parse_cpu, parse_memory

Schema = dict[str, Any]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def check_dns1123(value: str) -> str | None:
    """None when ``value`` is a DNS-1123 label, else the message to show."""
    if DNS1123_LABEL.match(value):
        return None
    return "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending alphanumeric, at most 63"


def _check_format(fmt: str, value: str) -> str | None:
    if fmt == "dns1123":
        return check_dns1123(value)
    if fmt == "labelkey":
        return None if _LABEL_KEY.match(value) else "must be a label key like app or example.com/tier"
    try:
        if fmt == "cpu":
            parse_cpu(value)
        elif fmt == "memory":
            parse_memory(value)
    except ValueError as e:
        return str(e)
    return None


def join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "map": (dict,),
}


def validate(schema: Schema, value: Any, path: str, causes: list[Cause]) -> Any:
    """Validate ``value`` against ``schema``; append causes; return it with defaults applied."""
    kind = schema.get("type", "any")
    if value is None:
        if schema.get("nullable") or kind == "any":
            return None
        causes.append(Cause(path, f"must be a {kind}, not null"))
        return None
    if kind == "any":
        return value
    expected = _PY_TYPES[kind]
    if not isinstance(value, expected) or (kind in ("integer", "number") and isinstance(value, bool)):
        # YAML turns `cpu: 2` into an int; quantities and strings accept numbers written bare.
        if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool) and schema.get(
            "format"
        ) in ("cpu", "memory"):
            value = str(value)
        else:
            causes.append(Cause(path, f"must be a {kind}, not {type(value).__name__}"))
            return value
    if kind == "object":
        return _validate_object(schema, value, path, causes)
    if kind == "map":
        values = schema.get("values", {"type": "string"})
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                causes.append(Cause(path, f"keys must be strings, not {key!r}"))
                continue
            if schema.get("keyFormat") and (msg := _check_format(schema["keyFormat"], key)):
                causes.append(Cause(join(path, key), msg))
            out[key] = validate(values, item, join(path, key), causes)
        return out
    if kind == "array":
        items = schema.get("items", {"type": "any"})
        return [validate(items, item, join(path, i), causes) for i, item in enumerate(value)]
    _validate_scalar(schema, value, path, causes)
    return value


def _validate_object(schema: Schema, value: dict[str, Any], path: str, causes: list[Cause]) -> dict[str, Any]:
    properties: dict[str, Schema] = schema.get("properties", {})
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in properties:
            causes.append(Cause(join(path, key), "unknown field"))
            continue
        out[key] = validate(properties[key], item, join(path, key), causes)
    for key in schema.get("required", []):
        if out.get(key) in (None, ""):
            causes.append(Cause(join(path, key), "required"))
    for key, sub in properties.items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
    return out


def _validate_scalar(schema: Schema, value: Any, path: str, causes: list[Cause]) -> None:
    if "enum" in schema and value not in schema["enum"]:
        causes.append(Cause(path, f"must be one of {', '.join(map(str, schema['enum']))}"))
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        low, high = schema.get("minimum", "-inf"), schema.get("maximum", "inf")
        causes.append(Cause(path, f"must be {low}-{high}"))
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        causes.append(Cause(path, schema.get("patternMessage", f"must match {schema['pattern']}")))
    if "format" in schema and isinstance(value, str) and (msg := _check_format(schema["format"], value)):
        causes.append(Cause(path, msg))
