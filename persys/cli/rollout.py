"""``persys scale deployment NAME --replicas N`` and ``persys rollout status|history|undo|restart|pause|resume``.

Each is a small client of the API, as kubectl's are: scale, restart, pause and resume are merge
patches of the Deployment's spec; undo copies a template from the history the controller keeps
in ``status.revisions`` back into ``spec.template`` (a compare-and-swap write, so a Deployment
changed meanwhile is refused, not overwritten); status follows the Deployment until its rollout
is complete (exit 0) or has failed: it missed its progress deadline, was rolled back by
``autoRollback``, or ``--timeout`` ran out (exit 1).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import click
import yaml

from persys.cli.printing import click_echo
from persys.cli.session import call, client_options, option
from persys.client import ApiClient
from persys.errors import BadRequest, NotFound, PersysError
from persys.resources.deployments import RESTARTED_AT, RolloutState, progress, template_hash
from persys.resources.kinds import DEPLOYMENT
from persys.resources.model import Resource, now_iso


class RolloutFailed(PersysError):
    """Raised when ``rollout status`` sees the rollout fail (deadline, rollback or timeout)."""

    reason = "RolloutFailed"


def _kind(name: str) -> None:
    if name.lower() not in DEPLOYMENT.names:
        raise BadRequest(f"this command works on deployments, not {name!r}")


def _kind_and_name(f: Any) -> Any:
    f = option("-n", "--namespace", default="default", show_default=True)(f)
    f = click.argument("name")(f)
    return click.argument("kind", metavar="deployment")(f)


@click.command()
@_kind_and_name
@option("--replicas", required=True, type=click.IntRange(0, 10000), help="The number of replicas wanted.")
@client_options
@click.pass_context
def scale(ctx: click.Context, kind: str, name: str, namespace: str, replicas: int, server: str | None,
          config_file: Path | None) -> None:
    """Set the replicas of deployment NAME."""
    _kind(kind)
    call(ctx, lambda c: c.patch("Deployment", name, {"spec": {"replicas": replicas}}, namespace=namespace),
         server=server, config_file=config_file)
    click_echo(f"deployment/{name} scaled to {replicas}")


@click.group()
def rollout() -> None:
    """Follow, list, undo, restart, pause and resume a Deployment's rollouts."""


def _progress(obj: Resource) -> tuple[str | None, bool]:
    """(what to say, whether it is done) about a Deployment's rollout; raises RolloutFailed."""
    found = progress(obj)
    if found.state == RolloutState.STALLED:
        raise RolloutFailed(found.message)
    return found.message, found.state == RolloutState.COMPLETE


@rollout.command()
@_kind_and_name
@option("--timeout", default=600.0, show_default=True, type=click.FloatRange(0, min_open=True),
        help="Seconds to wait before giving up (exit 1).")
@client_options
@click.pass_context
def status(ctx: click.Context, kind: str, name: str, namespace: str, timeout: float, server: str | None,
           config_file: Path | None) -> None:
    """Wait for the rollout of deployment NAME to finish; exit 1 when it fails."""
    _kind(kind)

    async def run(client: ApiClient) -> None:
        obj = await client.get("Deployment", name, namespace)
        started, deadline, said = obj.metadata.generation, time.monotonic() + timeout, ""
        while True:
            rolled_back = obj.status.get("lastRollback") or {}
            if int(rolled_back.get("generation") or 0) > started:
                raise RolloutFailed(f'deployment "{name}" rollout failed and was rolled back: '
                                    f'{rolled_back.get("reason", "")}')
            message, done = _progress(obj)
            if message and message != said:
                click_echo(message)
                said = message
            if done:
                return
            if time.monotonic() > deadline:
                raise RolloutFailed(f'timed out after {timeout:g}s waiting for deployment "{name}" to roll out')
            await asyncio.sleep(0.5)
            obj = await client.get("Deployment", name, namespace)

    call(ctx, run, server=server, config_file=config_file)


@rollout.command()
@_kind_and_name
@option("--revision", type=int, default=None, help="Print this revision's template.")
@client_options
@click.pass_context
def history(ctx: click.Context, kind: str, name: str, namespace: str, revision: int | None, server: str | None,
            config_file: Path | None) -> None:
    """List the revisions of deployment NAME (the controller keeps revisionHistoryLimit old ones)."""
    _kind(kind)
    obj = call(ctx, lambda c: c.get("Deployment", name, namespace), server=server, config_file=config_file)
    revisions = sorted(obj.status.get("revisions") or [], key=lambda r: int(r["revision"]))
    if revision is not None:
        click_echo(yaml.safe_dump(_find(obj, revisions, revision)["template"], sort_keys=False).rstrip())
        return
    click_echo(f"deployment/{name}")
    rows = [("REVISION", "IMAGE", "AVAILABLE", "CREATED", "CHANGE-CAUSE")]
    rows += [(str(r["revision"]), str((r.get("template") or {}).get("spec", {}).get("image", "")),
              "yes" if r.get("available") else "no", str(r.get("createdAt") or ""), r.get("changeCause") or "<none>")
             for r in revisions]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click_echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _find(obj: Resource, revisions: list[dict[str, Any]], number: int | None) -> dict[str, Any]:
    ordered = sorted(revisions, key=lambda r: int(r["revision"]))
    if number is None:
        if len(ordered) < 2:
            raise NotFound(f"deployment/{obj.metadata.name} has no previous revision to go back to")
        return ordered[-2]
    found = next((r for r in ordered if int(r["revision"]) == number), None)
    if found is None:
        known = ", ".join(str(r["revision"]) for r in ordered) or "none"
        raise NotFound(f"revision {number} is not in deployment/{obj.metadata.name}'s history (revisions: {known})")
    return found


@rollout.command()
@_kind_and_name
@option("--to-revision", "to_revision", type=click.IntRange(1), default=None,
        help="The revision to go back to (default: the one before the current).")
@client_options
@click.pass_context
def undo(ctx: click.Context, kind: str, name: str, namespace: str, to_revision: int | None, server: str | None,
         config_file: Path | None) -> None:
    """Roll deployment NAME back to an earlier revision's template."""
    _kind(kind)

    async def run(client: ApiClient) -> str:
        obj = await client.get("Deployment", name, namespace)
        target = _find(obj, list(obj.status.get("revisions") or []), to_revision)
        if template_hash(obj.spec["template"]) == target["templateHash"]:
            return f"deployment/{name} skipped rollback (already at revision {target['revision']})"
        obj.spec["template"] = target["template"]
        await client.apply(obj)  # carries the resourceVersion read: a Deployment changed since is a Conflict
        return f"deployment/{name} rolled back to revision {target['revision']}"

    click_echo(call(ctx, run, server=server, config_file=config_file))


def _patch_command(verb: str, patch: Any, said: str, doc: str) -> click.Command:
    @click.command(name=verb, help=doc)
    @_kind_and_name
    @client_options
    @click.pass_context
    def command(ctx: click.Context, kind: str, name: str, namespace: str, server: str | None,
                config_file: Path | None) -> None:
        _kind(kind)
        call(ctx, lambda c: c.patch("Deployment", name, patch(), namespace=namespace), server=server,
             config_file=config_file)
        click_echo(f"deployment/{name} {said}")
    return command


rollout.add_command(_patch_command(
    "restart", lambda: {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now_iso()}}}}},
    "restarted", "Replace every replica of deployment NAME, a rolling update to the same template."))
rollout.add_command(_patch_command("pause", lambda: {"spec": {"paused": True}}, "paused",
                                   "Pause deployment NAME: template changes wait; scaling still applies."))
rollout.add_command(_patch_command("resume", lambda: {"spec": {"paused": False}}, "resumed",
                                   "Resume a paused deployment NAME: its template rolls out."))
