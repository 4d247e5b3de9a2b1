"""Printer columns: what ``persys get`` shows of an object, for built-in and custom kinds alike.

Built-in kinds write their columns as Python functions. A custom kind declares them in its
ResourceDefinition as Kubernetes does (``additionalPrinterColumns``: name, type, jsonPath), and
``declared_columns`` turns those into the same functions: NAME first, then the declared ones,
then AGE; columns with ``priority > 0`` only in ``-o wide``.

Only a small, safe subset of JSONPath is understood: a dotted field path from the object's
root with optional list indexes (``.metadata.name``, ``.spec.retention.days``, ``.status.conditions[0].type``).
A definition using anything else is refused when it is written (``parse_json_path`` names why).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from persys.resources.model import Resource, parse_time

Column = tuple[str, Callable[[Resource], str]]
COLUMN_TYPES = ("string", "integer", "number", "boolean", "date")
NONE = "<none>"
_STEP = re.compile(r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\[([0-9]+)\]")


def age_since(timestamp: str) -> str:
    """Kubernetes-style age (``5s``, ``3m``, ``2h``, ``4d``) since an RFC 3339 ``timestamp``."""
    try:
        then = parse_time(timestamp)
    except ValueError:
        return timestamp  # a date column holding something else: show it as it is
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def age(obj: Resource) -> str:
    """The AGE column: time since the object was created."""
    return age_since(obj.metadata.creationTimestamp) if obj.metadata.creationTimestamp else "<unknown>"


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """The steps of a supported JSONPath (field names and list indexes); ValueError saying why not."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):  # kubectl's template form {.spec.x}
        text = text[1:-1]
    if not text.startswith("."):
        raise ValueError(f"{path!r} must start with '.', e.g. .spec.replicas")
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise ValueError(f"{path!r}: only field names and [N] indexes are supported (at {text[position:]!r})")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    return tuple(steps)


def lookup(obj: Resource, steps: tuple[str | int, ...]) -> Any:
    """The value ``steps`` lead to in ``obj`` (its wire shape), or None when any step is missing."""
    if not steps:
        return None
    first, rest = steps[0], steps[1:]
    roots: dict[str | int, Any] = {"apiVersion": obj.apiVersion, "kind": obj.kind, "spec": obj.spec,
                                   "status": obj.status}
    value: Any = obj.metadata.to_dict() if first == "metadata" else roots.get(first)
    for step in rest:
        if isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def cell(value: Any, column_type: str) -> str:
    """How one value prints in a column of ``column_type``."""
    if value is None:
        return NONE
    if column_type == "date" and isinstance(value, str):
        return age_since(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return ",".join(map(str, value.values() if isinstance(value, dict) else value))
    return str(value)


@dataclass(frozen=True)
class PrinterColumn:
    """One declared column: its header, type (``COLUMN_TYPES``), JSONPath and wide-only ``priority``."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrinterColumn:
        return cls(name=str(data["name"]), type=str(data.get("type") or "string"), json_path=str(data["jsonPath"]),
                   description=str(data.get("description") or ""), priority=int(data.get("priority") or 0))

    def column(self) -> Column:
        steps, kind = parse_json_path(self.json_path), self.type
        return self.name.upper(), lambda obj: cell(lookup(obj, steps), kind)


def declared_columns(declared: tuple[PrinterColumn, ...]) -> tuple[tuple[Column, ...], tuple[Column, ...]]:
    """(columns, wide columns) of a custom kind: NAME, the declared ones, AGE; priority > 0 only when wide."""
    name: Column = ("NAME", lambda o: o.metadata.name)
    main = tuple(c.column() for c in declared if c.priority == 0)
    wide = tuple(c.column() for c in declared if c.priority > 0)
    return (name, *main, ("AGE", age)), wide
