"""``persys audit``: read an API server's audit trail; and the ``--audit-*`` flags of ``server`` and ``up``.

``persys audit`` is a thin client of ``GET /audit/events`` (admins only): the API server reads its
own files, so each API server answers for its own trail. The flags are declared once here
(``audit_options``) and turned into ``AuditSettings`` by ``audit_settings``, which loads the policy
so that a bad policy file stops the server before it listens, naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click

from persys.cli.printing import click_echo
from persys.cli.session import call, client_options, option
from persys.client import ApiClient
from persys.errors import Cause, Invalid

if TYPE_CHECKING:
    from persys.api.audit.auditor import AuditSettings

F = TypeVar("F", bound=Callable[..., Any])
MIB = 1024 * 1024


def audit_options(f: F) -> F:
    """The ``--audit-*`` flags (``persys server``, ``persys up``); the command receives them as ``audit``."""
    declarations = [
        option("--audit-policy", type=click.Path(dir_okay=False, path_type=Path), default=None,
               help="Audit policy YAML (audit.k8s.io/v1 Policy); default: reads not recorded, changes at Request."),
        option("--audit-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
               help="Directory of the audit trail (default $PERSYS_HOME/audit)."),
        option("--audit-max-size", type=click.IntRange(min=1), default=100, show_default=True,
               help="Rotate audit.log when it would exceed this many MiB."),
        option("--audit-max-files", type=click.IntRange(min=0), default=5, show_default=True,
               help="Rotated audit files kept (audit.log.1 … .N)."),
        option("--audit-queue-size", type=click.IntRange(min=1), default=10_000, show_default=True,
               help="Events waiting for the disk (or for Loki) before new ones are dropped and counted."),
        option("--audit-loki-url", default="", help="Also push audit events to this Loki (http://loki:3100)."),
        option("--audit-loki-batch-size", type=click.IntRange(min=1), default=500, show_default=True,
               help="Events per push to Loki at most."),
        option("--audit-loki-batch-wait", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
               help="Seconds a push to Loki waits for more events to fill its batch."),
    ]
    for declare in reversed(declarations):
        f = declare(f)
    return f


def audit_settings(home: Path, *, audit_policy: Path | None, audit_dir: Path | None, audit_max_size: int,
                   audit_max_files: int, audit_queue_size: int, audit_loki_url: str, audit_loki_batch_size: int,
                   audit_loki_batch_wait: float) -> AuditSettings:
    """The settings the flags describe; Invalid naming the flag or the policy's field when they are wrong."""
    from persys.api.audit.auditor import AuditSettings
    from persys.api.audit.loki import LokiSettings
    from persys.api.audit.policy import load_policy

    loki = None
    if audit_loki_url:
        parts = urlsplit(audit_loki_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Invalid(f"--audit-loki-url {audit_loki_url!r} is not an http(s) URL",
                          causes=[Cause("--audit-loki-url", "must be an http:// or https:// URL with a host")])
        loki = LokiSettings(audit_loki_url, batch_size=audit_loki_batch_size, batch_wait=audit_loki_batch_wait,
                            queue_size=audit_queue_size)
    return AuditSettings(audit_dir or home / "audit", load_policy(audit_policy), max_bytes=audit_max_size * MIB,
                         max_files=audit_max_files, queue_size=audit_queue_size, loki=loki)


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from persys.api.audit.query import parse_since

    if value:
        try:
            parse_since(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return value


def _object(event: dict[str, Any]) -> str:
    ref = event.get("objectRef")
    if not ref:
        return str(event.get("requestURI", ""))
    parts = [ref.get("namespace"), ref.get("resource"), ref.get("name"), ref.get("subresource")]
    return "/".join(str(p) for p in parts if p)


def _when(event: dict[str, Any]) -> str:
    stamp = str(event.get("requestReceivedTimestamp", ""))
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return stamp


def table(events: list[dict[str, Any]]) -> str:
    rows = [["TIME", "USER", "VERB", "OBJECT", "CODE", "LEVEL"]]
    for event in events:
        user = (event.get("impersonatedUser") or event.get("user") or {}).get("username", "")
        rows.append([_when(event), str(user), str(event.get("verb", "")), _object(event),
                     str((event.get("responseStatus") or {}).get("code", "")), str(event.get("level", ""))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


@click.command()
@option("--name", default="", help="Only events about objects of this name.")
@option("--user", default="", help="Only events of this user.")
@option("--verb", default="", help="Only this verb (create, update, patch, delete, get, list, watch, …).")
@option("-n", "--namespace", default="", help="Only events about objects in this namespace.")
@option("--resource", default="", help="Only events about this resource (a plural: workloads, secrets).")
@option("--since", default="", callback=_since, help="Only events of the last 90s, 15m, 1h30m, 2d, or since an "
        "RFC 3339 time.")
@option("--limit", type=click.IntRange(1, 100_000), default=500, show_default=True, help="The newest N events.")
@option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@client_options
@click.pass_context
def audit(ctx: click.Context, name: str, user: str, verb: str, namespace: str, resource: str, since: str, limit: int,
          output: str, server: str | None, config_file: Path | None) -> None:
    """Show the audit trail of the API server (oldest first; admins only). Each API server keeps its own."""
    wanted = {"name": name, "user": user, "verb": verb, "namespace": namespace, "resource": resource, "since": since}
    params = {key: value for key, value in wanted.items() if value} | {"limit": str(limit)}

    async def run(client: ApiClient) -> Any:
        _, data, _ = await client.request("GET", "/audit/events", params=params)
        return data

    data = call(ctx, run, server=server, config_file=config_file)
    events = list(data.get("items") or []) if isinstance(data, dict) else []
    if output == "json":
        click_echo(json.dumps(events, indent=2))
    elif events:
        click_echo(table(events))
    else:
        click.echo("No audit events match.", err=True)
