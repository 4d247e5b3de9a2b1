"""``persys describe KIND NAME``: metadata, spec, status, conditions and the object's recent events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from persys.cli.get import split_kind
from persys.cli.printing import MASK, click_echo, console, dump
from persys.cli.session import call, client_options, option
from persys.client import ApiClient
from persys.errors import BadRequest
from persys.resources import Kind, Resource


@click.command()
@click.argument("kind_name", metavar="KIND")
@click.argument("name", required=False)
@option("-n", "--namespace", default="default", show_default=True)
@client_options
@click.pass_context
def describe(ctx: click.Context, kind_name: str, name: str | None, namespace: str, server: str | None,
             config_file: Path | None) -> None:
    """Show one object in detail, with the events that mention it."""
    kind, name = split_kind(kind_name, name)
    if not name:
        raise BadRequest("describe needs a NAME")

    async def run(client: ApiClient) -> None:
        obj = await client.get(kind.kind, name, namespace)
        scope = obj.metadata.namespace if kind.namespaced else None
        events, _ = await client.list("Event", scope)
        mine = [e for e in events if _involves(e, obj)]
        mine.sort(key=lambda e: str(e.spec.get("lastTimestamp") or e.metadata.creationTimestamp))
        show(kind, obj, mine[-20:])

    call(ctx, run, server=server, config_file=config_file)


def _involves(event: Resource, obj: Resource) -> bool:
    involved = event.spec.get("involvedObject") or {}
    return bool(involved.get("name") == obj.metadata.name
                and str(involved.get("kind", obj.kind)).lower() == obj.kind.lower()
                and (not involved.get("uid") or involved.get("uid") == obj.metadata.uid))


def _block(title: str, data: Any) -> None:
    click_echo(f"{title}:")
    if not data:
        click_echo("  <none>")
        return
    for line in dump(data, "yaml").splitlines():
        click_echo(f"  {line}")


def show(kind: Kind, obj: Resource, events: list[Resource]) -> None:
    meta = obj.metadata
    fields = [("Name", meta.name), ("Namespace", meta.namespace if kind.namespaced else None),
              ("Kind", obj.kind), ("UID", meta.uid),
              ("Labels", ",".join(f"{k}={v}" for k, v in sorted(meta.labels.items())) or "<none>"),
              ("Annotations", ",".join(f"{k}={v}" for k, v in sorted(meta.annotations.items())) or "<none>"),
              ("Generation", str(meta.generation)), ("Resource Version", meta.resourceVersion),
              ("Created", meta.creationTimestamp), ("Deleting", meta.deletionTimestamp),
              ("Finalizers", ",".join(meta.finalizers) or None)]
    for label, value in fields:
        if value is not None:
            click_echo(f"{label + ':':<18}{value}")
    spec = {key: MASK for key in obj.spec} if kind.sensitive else obj.spec
    _block("Spec" if kind.spec_field == "spec" else kind.spec_field.capitalize(), spec)
    if kind.status_subresource:
        _block("Status", {k: v for k, v in obj.status.items() if k != "conditions"})
        _conditions(obj.status.get("conditions") or [])
    _events(events)


def _conditions(conditions: list[dict[str, Any]]) -> None:
    if not conditions:
        click_echo("Conditions:        <none>")
        return
    click_echo("Conditions:")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in ("  TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"):
        table.add_column(header, no_wrap=True)
    for c in conditions:
        table.add_row("  " + str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason") or ""),
                      str(c.get("lastTransitionTime") or ""), str(c.get("message") or ""))
    console().print(table)


def _events(events: list[Resource]) -> None:
    if not events:
        click_echo("Events:            <none>")
        return
    click_echo("Events:")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in ("  LAST SEEN", "TYPE", "REASON", "COUNT", "FROM", "MESSAGE"):
        table.add_column(header, no_wrap=True)
    for e in events:
        table.add_row("  " + str(e.spec.get("lastTimestamp") or "")[:19], str(e.spec.get("type", "")),
                      str(e.spec.get("reason", "")), str(e.spec.get("count", 1)), str(e.spec.get("source") or ""),
                      str(e.spec.get("message") or ""))
    console().print(table)
