"""``persys diff -f FILE``: what applying manifests would change, before anything is written.

Each document is sent to the server as a dry run (``PUT …?dryRun=All``: validated, defaulted and
merged exactly as an apply would be, and nothing stored); the answer is compared with the live
object as a unified diff of their YAML. Fields only the server sets (``resourceVersion``,
``generation``, ``uid``, ``creationTimestamp``) and ``status``, which an apply never writes, are
left out. Secret values are masked: a changed value shows as ``******** (before)`` and
``******** (after)``. The exit code follows kubectl: 0 no difference, 1 differences, 2 an error.

Objects that differ are named with the highest ``resourceVersion`` read, on stderr, so that
``persys apply --if-resource-version N`` writes only if none of them changed since the diff
(a change to any object gets a higher resourceVersion than every one read before).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import click
import yaml

from persys.cli.printing import MASK, click_echo
from persys.cli.session import call, client_options, option, report
from persys.client import ApiClient
from persys.errors import NotFound, PersysError
from persys.resources import Kind, Resource, manifest

SERVER_FIELDS = ("resourceVersion", "generation", "uid", "creationTimestamp")
EXIT_SAME, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2


@click.command()
@option("-f", "--filename", "paths", required=True, multiple=True,
        help="A manifest file, a directory of them, or - for stdin.")
@client_options
@click.pass_context
def diff(ctx: click.Context, paths: tuple[str, ...], server: str | None, config_file: Path | None) -> None:
    """Diff the live objects against a dry run of the manifests (exit 0: same, 1: different, 2: error)."""
    try:
        documents: list[tuple[str, dict[str, Any]]] = []
        for path in paths:
            documents += manifest.load(path)
        code = call(ctx, lambda client: _diff_all(client, documents, paths), server=server, config_file=config_file)
    except PersysError as e:
        report(e)
        code = EXIT_ERROR
    ctx.exit(code)


async def _diff_all(client: ApiClient, documents: list[tuple[str, dict[str, Any]]], paths: tuple[str, ...]) -> int:
    changed, errors, newest = 0, 0, 0
    for source, document in documents:
        try:
            text, version = await diff_one(client, document)
        except PersysError as e:
            errors += 1
            click_echo(f"{source}: {str(document.get('kind') or '<no kind>').lower()}/"
                       f"{(document.get('metadata') or {}).get('name') or '<no name>'}:", err=True)
            report(e)
            continue
        newest = max(newest, version)
        if text:
            changed += 1
            click_echo(text.rstrip("\n"))
    if errors:
        return EXIT_ERROR
    if changed:
        files = " ".join(f"-f {p}" for p in paths)
        click_echo(f"{changed} object(s) would change; to apply exactly these changes: "
                   f"persys apply {files} --if-resource-version {newest}", err=True)
        return EXIT_DIFFERENT
    return EXIT_SAME


async def diff_one(client: ApiClient, document: dict[str, Any]) -> tuple[str, int]:
    """(unified diff of the live object against the dry run, "" when equal; the live resourceVersion, 0 if none)."""
    kind = await client.resolve(str(document.get("kind") or ""))
    meta = _metadata(document)
    namespace = str(meta.get("namespace") or "default") if kind.namespaced else ""
    name = str(meta.get("name") or "")
    try:
        live: Resource | None = await client.get(kind.kind, name, namespace)
    except NotFound:
        live = None
    merged, _ = await client.apply_raw(document, dry_run=True)
    before, after = comparable(kind, live), comparable(kind, merged)
    if kind.sensitive:
        before, after = _masked(kind, before, after)
    where = f"{kind.plural}/{namespace + '/' if namespace else ''}{name}"
    lines = difflib.unified_diff(_yaml(before), _yaml(after), fromfile=f"live/{where}", tofile=f"merged/{where}")
    return "".join(lines), int(live.metadata.resourceVersion or 0) if live is not None else 0


def comparable(kind: Kind, obj: Resource | None) -> dict[str, Any] | None:
    """The object as an apply can change it: no status, none of the fields only the server sets."""
    if obj is None:
        return None
    data = kind.to_wire(obj)
    data.pop("status", None)
    for field in SERVER_FIELDS:
        data.get("metadata", {}).pop(field, None)
    return data


def _masked(kind: Kind, before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[Any, Any]:
    """Secret values replaced by a mask that still tells a changed value from an unchanged one."""
    old = dict((before or {}).get(kind.spec_field) or {})
    new = dict((after or {}).get(kind.spec_field) or {})
    if before is not None:
        before = {**before, kind.spec_field: {k: MASK if new.get(k) == v else f"{MASK} (before)"
                                              for k, v in old.items()}}
    if after is not None:
        after = {**after, kind.spec_field: {k: MASK if old.get(k) == v else f"{MASK} (after)"
                                            for k, v in new.items()}}
    return before, after


def _yaml(data: dict[str, Any] | None) -> list[str]:
    if data is None:
        return []
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).splitlines(keepends=True)


def _metadata(document: dict[str, Any]) -> dict[str, Any]:
    meta = document.get("metadata")
    return meta if isinstance(meta, dict) else {}
