"""``persys delete KIND NAME`` or ``persys delete -f FILE``: finalizers may keep an object a while."""

from __future__ import annotations

from pathlib import Path

import click

from persys.cli.get import split_kind
from persys.cli.printing import click_echo
from persys.cli.session import call, client_options, option, report
from persys.client import ApiClient
from persys.errors import BadRequest, PersysError
from persys.resources import REGISTRY, Kind, manifest


@click.command()
@click.argument("kind_name", metavar="KIND", required=False)
@click.argument("names", nargs=-1)
@option("-n", "--namespace", default="default", show_default=True)
@option("-f", "--filename", "paths", multiple=True, help="Delete the objects these manifests name.")
@client_options
@click.pass_context
def delete(ctx: click.Context, kind_name: str | None, names: tuple[str, ...], namespace: str,
           paths: tuple[str, ...], server: str | None, config_file: Path | None) -> None:
    """Delete objects by KIND and NAME(s), or those named in manifests (-f)."""
    targets: list[tuple[Kind, str, str]] = []
    for path in paths:
        for _, doc in manifest.load(path):
            raw = doc.get("metadata")
            meta = raw if isinstance(raw, dict) else {}
            targets.append((REGISTRY.get(str(doc.get("kind") or "")), str(meta.get("name") or ""),
                            str(meta.get("namespace") or namespace)))
    if kind_name:
        kind, first = split_kind(kind_name, None)
        targets += [(kind, name, namespace) for name in ([first] if first else []) + list(names)]
    if not targets:
        raise BadRequest("nothing to delete: give KIND NAME or -f FILE")

    async def run(client: ApiClient) -> int:
        failures = 0
        for kind, name, ns in targets:
            try:
                await client.delete(kind.kind, name, namespace=ns)
            except PersysError as e:
                failures += 1
                report(e)
                continue
            click_echo(f"{kind.singular}/{name} deleted")
        return failures

    if call(ctx, run, server=server, config_file=config_file):
        ctx.exit(1)
