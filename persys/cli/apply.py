"""``persys apply -f FILE|DIR|-``: create or update every document; the server validates each one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from persys.cli import wait as converge
from persys.cli.printing import click_echo, console
from persys.cli.session import call, client_options, option, report
from persys.client import ApiClient
from persys.errors import NotFound, PersysError
from persys.resources import ObjectKey, Resource, manifest


@click.command()
@option("-f", "--filename", "paths", required=True, multiple=True,
        help="A manifest file, a directory of them, or - for stdin.")
@option("--dry-run", is_flag=True, help="Validate on the server without storing anything.")
@option("--wait", is_flag=True, help="Show the applied workloads converging; exit 1 naming those that did not.")
@option("--timeout", type=float, default=120.0, show_default=True, help="Seconds --wait waits.")
@option("--if-resource-version", "if_version", type=click.IntRange(min=0), default=None,
        help="Write nothing if any of the objects changed since resourceVersion N (what persys diff printed).")
@client_options
@click.pass_context
def apply(ctx: click.Context, paths: tuple[str, ...], dry_run: bool, wait: bool, timeout: float,
          if_version: int | None, server: str | None, config_file: Path | None) -> None:
    """Create or update the objects of manifests (prints created, configured or unchanged)."""
    documents: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        documents += manifest.load(path)

    async def run(client: ApiClient) -> int:
        failures = 0
        workloads: list[ObjectKey] = []
        pinned: dict[int, str] = {}
        if if_version is not None:
            pinned, stale = await unchanged_since(client, documents, if_version)
            for line in stale:
                click_echo(line, err=True)
            if stale:
                return len(stale)
        for i, (source, document) in enumerate(documents):
            try:
                if i in pinned:
                    obj, outcome = await apply_pinned(client, document, pinned[i], dry_run)
                else:
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


async def unchanged_since(client: ApiClient, documents: list[tuple[str, dict[str, Any]]],
                          version: int) -> tuple[dict[int, str], list[str]]:
    """Before writing anything: each document's current resourceVersion ("" when absent), and why any
    object is refused (it changed, or was created, after ``version``)."""
    pinned: dict[int, str] = {}
    stale: list[str] = []
    for i, (source, document) in enumerate(documents):
        kind = await client.resolve(str(document.get("kind") or ""))
        meta = _metadata(document)
        try:
            current = await client.get(kind.kind, str(meta.get("name") or ""), str(meta.get("namespace") or "default"))
        except NotFound:
            pinned[i] = ""
            continue
        now = int(current.metadata.resourceVersion or 0)
        if now > version:
            stale.append(f"{source}: {describe_document(document)} changed since resourceVersion {version} "
                         f"(now {now}); nothing was applied: run persys diff again")
        pinned[i] = str(now)
    return pinned, stale


async def apply_pinned(client: ApiClient, document: dict[str, Any], version: str,
                       dry_run: bool) -> tuple[Resource, str]:
    """Write ``document`` only over the object as it was checked: compare-and-swap on its resourceVersion,
    or create-only (409 if someone created it since) when it did not exist."""
    if version:
        meta = {**(document.get("metadata") or {}), "resourceVersion": version}
        return await client.apply_raw({**document, "metadata": meta}, dry_run=dry_run)
    kind = await client.resolve(str(document.get("kind") or ""))
    namespace = str((document.get("metadata") or {}).get("namespace") or "default")
    _, data, _ = await client.request("POST", client.path(kind.kind, namespace), body=document,
                                      params={"dryRun": "All"} if dry_run else None)
    return client.registry.get(kind.kind).from_wire(data), "created"


def describe_document(document: dict[str, Any]) -> str:
    meta = document.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{str(document.get('kind') or '<no kind>').lower()}/{name or '<no name>'}"


def _metadata(document: dict[str, Any]) -> dict[str, Any]:
    meta = document.get("metadata")
    return meta if isinstance(meta, dict) else {}
