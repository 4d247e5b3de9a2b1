"""``persys apply -f FILE|DIR|-``: create or update every document; the server validates each one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from persys.cli import wait as converge
from persys.cli.printing import click_echo, console
from persys.cli.session import call, client_options, option, report
from persys.client import ApiClient
from persys.errors import PersysError
from persys.resources import ObjectKey, manifest


@click.command()
@option("-f", "--filename", "paths", required=True, multiple=True,
        help="A manifest file, a directory of them, or - for stdin.")
@option("--dry-run", is_flag=True, help="Validate on the server without storing anything.")
@option("--wait", is_flag=True, help="Show the applied workloads converging; exit 1 naming those that did not.")
@option("--timeout", type=float, default=120.0, show_default=True, help="Seconds --wait waits.")
@client_options
@click.pass_context
def apply(ctx: click.Context, paths: tuple[str, ...], dry_run: bool, wait: bool, timeout: float,
          server: str | None, config_file: Path | None) -> None:
    """Create or update the objects of manifests (prints created, configured or unchanged)."""
    documents: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        documents += manifest.load(path)

    async def run(client: ApiClient) -> int:
        failures = 0
        workloads: list[ObjectKey] = []
        for source, document in documents:
            try:
                obj, outcome = await client.apply_raw(document, dry_run=dry_run)
            except PersysError as e:
                failures += 1
                click_echo(f"{source}: {describe_document(document)}:", err=True)
                report(e)
                continue
            suffix = " (dry run)" if dry_run else ""
            click_echo(f"{client.registry.get(obj.kind).singular}/{obj.metadata.name} {outcome}{suffix}")
            if obj.kind == "Workload":
                workloads.append(obj.key)
        if wait and workloads and not dry_run:
            not_converged = await converge.wait(client, workloads, timeout, console())
            for line in not_converged:
                click_echo(f"did not converge: {line}", err=True)
            failures += len(not_converged)
        return failures

    if call(ctx, run, server=server, config_file=config_file):
        ctx.exit(1)


def describe_document(document: dict[str, Any]) -> str:
    meta = document.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{str(document.get('kind') or '<no kind>').lower()}/{name or '<no name>'}"
