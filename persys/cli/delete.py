"""``persys delete KIND NAME`` or ``persys delete -f FILE``: finalizers may keep an object a while.

``--cascade`` says what becomes of the objects it owns (``metadata.ownerReferences``), as kubectl's
does: ``background`` (the default) deletes it now and leaves its dependents to the garbage
collector, ``foreground`` keeps it (with a deletionTimestamp) until its blocking dependents are gone,
``orphan`` keeps the dependents and only removes their reference to it.
"""

from __future__ import annotations

from pathlib import Path

import click

from persys.cli.get import split_kind
from persys.cli.printing import click_echo
from persys.cli.session import call, client_options, option, report
from persys.client import ApiClient
from persys.errors import BadRequest, PersysError
from persys.resources import REGISTRY, Kind, manifest
from persys.resources.model import Propagation


@click.command()
@click.argument("kind_name", metavar="KIND", required=False)
@click.argument("names", nargs=-1)
@option("-n", "--namespace", default="default", show_default=True)
@option("-f", "--filename", "paths", multiple=True, help="Delete the objects these manifests name.")
@option("--cascade", type=click.Choice([p.lower() for p in Propagation]), default="background", show_default=True,
        help="What becomes of the objects it owns: deleted after it (background), before it (foreground), or "
             "kept without their reference to it (orphan).")
@client_options
@click.pass_context
def delete(ctx: click.Context, kind_name: str | None, names: tuple[str, ...], namespace: str,
           paths: tuple[str, ...], cascade: str, server: str | None, config_file: Path | None) -> None:
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

    policy = {"propagationPolicy": Propagation[cascade.upper()].value}

    async def run(client: ApiClient) -> int:
        failures = 0
        for kind, name, ns in targets:
            try:
                await client.request("DELETE", client.path(kind.kind, ns, name), params=policy)
            except PersysError as e:
                failures += 1
                report(e)
                continue
            click_echo(f"{kind.singular}/{name} deleted")
        return failures

    if call(ctx, run, server=server, config_file=config_file):
        ctx.exit(1)
