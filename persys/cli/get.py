"""``persys get KIND [NAME]``: tables from the kind's printer columns, or YAML/JSON/names; ``-w`` follows."""

from __future__ import annotations

from pathlib import Path

import click

from persys.cli.printing import RowPrinter, click_echo, dump, print_objects, wire
from persys.cli.session import call, client_options, lookup_kind, option
from persys.client import ApiClient
from persys.errors import BadRequest
from persys.resources import Kind, Resource

OUTPUTS = ("table", "wide", "json", "yaml", "name")


def split_kind(kind_name: str, name: str | None) -> tuple[Kind, str | None]:
    """``workload web`` or ``workload/web``; custom kinds too (``backup nightly``, ``backups.backup.example.com``)."""
    if "/" in kind_name:
        kind_name, _, slash_name = kind_name.partition("/")
        if name and name != slash_name:
            raise BadRequest(f"two names given: {slash_name!r} and {name!r}")
        name = slash_name
    return lookup_kind(kind_name), name


@click.command()
@click.argument("kind_name", metavar="KIND")
@click.argument("name", required=False)
@option("-n", "--namespace", default="default", show_default=True, help="Namespace.")
@option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@option("-l", "--selector", default="", help="Label selector, e.g. app=web,tier!=db.")
@option("-o", "--output", type=click.Choice(OUTPUTS), default="table", show_default=True)
@option("-w", "--watch", is_flag=True, help="After listing, print changes as they happen.")
@option("--show-secrets", is_flag=True, help="Print Secret values (with -o yaml or json).")
@client_options
@click.pass_context
def get(ctx: click.Context, kind_name: str, name: str | None, namespace: str, all_namespaces: bool,
        selector: str, output: str, watch: bool, show_secrets: bool, server: str | None,
        config_file: Path | None) -> None:
    """Show objects of KIND (workloads/wl, nodes/no, events/ev, secrets, rd, a custom kind), or the one NAME."""
    kind, name = split_kind(kind_name, name)
    scope = None if all_namespaces else namespace

    async def run(client: ApiClient) -> None:
        if name:
            objects, revision = [await client.get(kind.kind, name, namespace)], ""
        else:
            objects, revision = await client.list(kind.kind, scope, selector)
        printer = RowPrinter(kind, output == "wide", all_namespaces)
        if output in ("table", "wide"):
            printer.print(objects, say_empty=not watch)
        else:
            print_objects(kind, objects, output, single=bool(name), show_secrets=show_secrets)
        if watch:
            await follow(client, kind, scope, name, selector, revision, printer, output, show_secrets)

    call(ctx, run, server=server, config_file=config_file)


async def follow(client: ApiClient, kind: Kind, scope: str | None, name: str | None, selector: str,
                 revision: str, printer: RowPrinter, output: str, show_secrets: bool) -> None:
    """Print each change after ``revision`` until interrupted."""
    async for item in client.watch(kind.kind, scope, resource_version=revision, selector=selector):
        obj: Resource | None = item.object
        if obj is None or (name and obj.metadata.name != name):
            continue
        if output in ("table", "wide"):
            printer.print([obj], show_header=False)
        elif output == "name":
            click_echo(f"{kind.singular}/{obj.metadata.name}")
        else:
            click_echo(dump({"type": item.type, "object": wire(kind, obj, show_secrets)}, output)
                       + ("" if output == "json" else "\n---"))
