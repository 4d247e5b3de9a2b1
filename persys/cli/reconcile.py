"""``persys stats``, ``persys reconcile [NAME]``, ``persys stop NAME``, ``persys start NAME``.

Thin clients of the reconciliation routes (``persys.api.reconciliation``): they ask, the
reconciler does the work asynchronously; ``persys get wl NAME`` shows the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from persys.cli.printing import click_echo
from persys.cli.session import call, client_options, option
from persys.client import ApiClient
from persys.resources.phase import DesiredState


def _format_stats(data: dict[str, Any]) -> str:
    last = data.get("lastPass") or {}
    duration = last.get("durationSeconds")
    rows = [
        ("Total processed", data.get("totalProcessed", 0)),
        ("Needing reconciliation", data.get("needingReconciliation", 0)),
        ("Errors", data.get("errors", 0)),
        ("Success rate", f"{float(data.get('successRate', 1.0)) * 100:.1f}%"),
        ("Last pass start", last.get("start") or "-"),
        ("Last pass end", last.get("end") or "-"),
        ("Last pass duration", f"{duration:.3f}s" if isinstance(duration, int | float) else "-"),
    ]
    actions = data.get("actions") or {}
    rows += [(f"  {action}", count) for action, count in sorted(actions.items())]
    if actions:
        rows.insert(7, ("Actions", ""))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


@click.command()
@option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@client_options
@click.pass_context
def stats(ctx: click.Context, output: str, server: str | None, config_file: Path | None) -> None:
    """Show reconciliation statistics."""

    async def run(client: ApiClient) -> Any:
        _, data, _ = await client.request("GET", "/reconciliation/stats")
        return data

    data = call(ctx, run, server=server, config_file=config_file)
    click_echo(json.dumps(data, indent=2) if output == "json" else _format_stats(data))


@click.command()
@click.argument("name", required=False)
@option("-n", "--namespace", default="default", show_default=True)
@client_options
@click.pass_context
def reconcile(ctx: click.Context, name: str | None, namespace: str, server: str | None,
              config_file: Path | None) -> None:
    """Reconcile workload NAME (name or uid) now, or every workload when NAME is omitted."""

    async def run(client: ApiClient) -> Any:
        if name:
            _, data, _ = await client.request("POST", f"/workloads/{name}/reconcile", params={"namespace": namespace})
        else:
            _, data, _ = await client.request("POST", "/reconciliation/trigger")
        return data

    data = call(ctx, run, server=server, config_file=config_file)
    if name:
        click_echo(f"workload/{data['name']} reconcile requested")
    else:
        click_echo("full reconciliation pass triggered")


def _desired_state_command(state: str, verb: str) -> click.Command:
    @click.command(name=verb, help=f"Set workload NAME (name or uid) to desiredState {state}.")
    @click.argument("name")
    @option("-n", "--namespace", default="default", show_default=True)
    @client_options
    @click.pass_context
    def command(ctx: click.Context, name: str, namespace: str, server: str | None, config_file: Path | None) -> None:
        async def run(client: ApiClient) -> Any:
            _, data, _ = await client.request("PUT", f"/workloads/{name}/desired-state",
                                              body={"desiredState": state}, params={"namespace": namespace})
            return data

        data = call(ctx, run, server=server, config_file=config_file)
        click_echo(f"workload/{data['metadata']['name']} desiredState {state}")

    return command


stop = _desired_state_command(DesiredState.STOPPED, "stop")
start = _desired_state_command(DesiredState.RUNNING, "start")
