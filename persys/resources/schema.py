"""A small structural schema language, and the validator that names every bad field.

Schemas are plain dicts (a subset of OpenAPI v3) so that user-defined kinds can bring
their own: ``type`` (object, string, integer, number, boolean, array, map, any),
``properties``/``required`` for objects, ``values`` for maps, ``items`` for arrays,
``enum``, ``pattern``, ``minimum``/``maximum``, ``format`` (see ``formats.FORMATS``) and
``keyFormat`` for map keys, ``default`` and ``nullable``. Unknown object fields are rejected by name.

Numbers are finite (JSON has no NaN or Infinity, yet Python's parser reads them, and ``1e400`` reads
as infinity) and integers fit in 64 bits, whatever the schema says, so nothing stored can break a
reader or a timer later; values of type ``any`` are searched for such numbers too.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from persys.errors import Cause
from persys.resources.formats import FORMATS
from persys.resources.names import check_dns1123

__all__ = ["Schema", "check_dns1123", "join", "validate"]

Schema = dict[str, Any]
INT64 = (-(2**63), 2**63 - 1)
_NOT_FINITE = "must be a finite number (JSON has no NaN or Infinity)"


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
        _finite_everywhere(value, path, causes)
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
            if schema.get("keyFormat") and (msg := FORMATS[schema["keyFormat"]](key)):
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


def _finite_everywhere(value: Any, path: str, causes: list[Cause]) -> None:
    """A cause for each number in ``value`` (of schema type any) that is not finite or not 64-bit.

    Iterative: a value of type any may nest as deep as the body parser allowed."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack += [(join(where, str(k)), v) for k, v in item.items()]
        elif isinstance(item, list):
            stack += [(join(where, i), v) for i, v in enumerate(item)]
        elif msg := _number_problem(item):
            causes.append(Cause(where, msg))


def _number_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return _NOT_FINITE
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        return "must fit in 64 bits"
    return None


def _validate_scalar(schema: Schema, value: Any, path: str, causes: list[Cause]) -> None:
    if msg := _number_problem(value):
        causes.append(Cause(path, msg))
        return
    if "enum" in schema and value not in schema["enum"]:
        causes.append(Cause(path, f"must be one of {', '.join(map(str, schema['enum']))}"))
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        low, high = schema.get("minimum", "-inf"), schema.get("maximum", "inf")
        causes.append(Cause(path, f"must be {low}-{high}"))
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        causes.append(Cause(path, schema.get("patternMessage", f"must match {schema['pattern']}")))
    if "format" in schema and isinstance(value, str) and (msg := FORMATS[schema["format"]](value)):
        causes.append(Cause(path, msg))
