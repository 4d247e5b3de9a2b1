"""``persys explain KIND[.field.path]``: a kind's schema, field by field, with its descriptions.

The schema comes from the server's discovery route, the one ``/openapi.json`` uses, so custom
kinds show what their ResourceDefinition wrote (descriptions, defaults, enums, required fields)
and built-in kinds their types. ``KIND`` may be any name of the kind, ``kind.group`` included;
the longest leading part that names a kind is the kind, the rest the field path
(``persys explain backups.backup.example.com.spec.retention``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from persys.cli.printing import click_echo
from persys.cli.session import call, client_options
from persys.client import ApiClient
from persys.errors import BadRequest, NotFound
from persys.resources import Kind


def type_name(schema: dict[str, Any]) -> str:
    """How a field's type reads: ``string``, ``[]object``, ``map[string]integer``, ``Object`` (anything)."""
    kind = schema.get("type")
    if kind == "array":
        return "[]" + type_name(schema.get("items") or {})
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map[string]" + type_name(schema["additionalProperties"])
    return str(kind) if kind else "Object"


def split_target(target: str, known: Any) -> tuple[Kind, list[str]]:
    """(kind, field path) of ``target``: the longest leading dotted part that ``known`` resolves."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        try:
            return known(".".join(parts[:end])), parts[end:]
        except NotFound:
            continue
    return known(parts[0]), []  # raises NotFound naming the kinds there are


def walk(schema: dict[str, Any], path: list[str], kind: Kind) -> dict[str, Any]:
    """The schema of the field ``path`` leads to (through list items); BadRequest naming a missing step."""
    node, where = schema, kind.kind
    for step in path:
        while node.get("type") == "array":
            node = node.get("items") or {}
        properties = node.get("properties") or {}
        if step not in properties:
            fields = ", ".join(sorted(properties)) or "none"
            raise BadRequest(f"field {step!r} does not exist in {where} (its fields: {fields})")
        node, where = properties[step], f"{where}.{step}"
    return node


def _lines(text: str, indent: str) -> list[str]:
    return [indent + line for line in text.splitlines()] or [indent + "<empty>"]


def render(kind: Kind, path: list[str], node: dict[str, Any]) -> str:
    out = [f"KIND:     {kind.kind}", f"GROUP:    {kind.group}", f"VERSION:  {kind.version}", ""]
    if path:
        out += [f"FIELD:    {path[-1]} <{type_name(node)}>", ""]
    out += ["DESCRIPTION:", *_lines(str(node.get("description") or "<empty>"), "    ")]
    for key, label in (("enum", "ENUM"), ("default", "DEFAULT")):
        if key in node:
            out += ["", f"{label}:", "    " + json.dumps(node[key])]
    while node.get("type") == "array":
        node = node.get("items") or {}
    fields: dict[str, Any] = node.get("properties") or {}
    if fields:
        required = set(node.get("required") or ())
        out += ["", "FIELDS:"]
        for name, sub in fields.items():
            mark = " -required-" if name in required else ""
            out.append(f"  {name}\t<{type_name(sub)}>{mark}")
            notes = [str(sub["description"])] if sub.get("description") else []
            notes += [f"{label}: {json.dumps(sub[key])}" for key, label in (("enum", "Enum"), ("default", "Default"))
                      if key in sub]
            for note in notes:
                out += _lines(note, "    ")
            out.append("")
    return "\n".join(out).rstrip("\n")


@click.command()
@click.argument("target", metavar="KIND[.FIELD.PATH]")
@client_options
@click.pass_context
def explain(ctx: click.Context, target: str, server: str | None, config_file: Path | None) -> None:
    """Describe a kind's fields (custom kinds with their definition's descriptions), e.g. backup.spec.retention."""

    async def run(client: ApiClient) -> str:
        entries = await client.discover()
        kind, path = split_target(target, client.registry.get)
        entry = next((e for e in entries if e["kind"] == kind.kind and e["group"] == kind.group), None)
        if entry is None:
            raise NotFound(f"{kind.plural}.{kind.group} is not served by {client.server}")
        return render(kind, path, walk(entry.get("schema") or {}, path, kind))

    click_echo(call(ctx, run, server=server, config_file=config_file))
