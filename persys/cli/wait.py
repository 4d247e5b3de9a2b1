"""``persys apply --wait``: watch applied workloads converge, with a live progress view.

A workload has converged when its phase is what its spec asks for: Running for a service,
Exited with code 0 for a job (restartPolicy OnFailure or Never), Stopped when desiredState
is Stopped. Those that did not converge in time are named with their phase and message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from persys.client import ApiClient
from persys.errors import Unavailable
from persys.resources import ObjectKey, Resource
from persys.resources.phase import DesiredState, Phase


@dataclass
class Outcome:
    """Where one workload stands: converged, finally failed, or still on its way."""

    converged: bool
    final: bool
    reason: str


def judge(obj: Resource) -> Outcome:
    """Has this workload reached the phase its spec asks for?"""
    phase = str(obj.status.get("phase") or Phase.PENDING)
    message = str(obj.status.get("message") or "")
    if obj.status.get("observedGeneration", obj.metadata.generation) < obj.metadata.generation:
        return Outcome(False, False, f"{phase} (spec change not yet observed)")
    if obj.spec.get("desiredState") == DesiredState.STOPPED:
        return Outcome(phase == Phase.STOPPED, False, phase)
    job = obj.spec.get("restartPolicy") in ("OnFailure", "Never")
    if job and phase == Phase.EXITED:
        code = obj.status.get("exitCode")
        if code == 0:
            return Outcome(True, True, "Exited 0")
        final = obj.spec.get("restartPolicy") == "Never"
        return Outcome(False, final, f"Exited {code}" + (f": {message}" if message else ""))
    if phase == Phase.FAILED:
        return Outcome(False, True, f"{phase}: {message}" if message else phase)
    if phase == Phase.RUNNING and not job:
        return Outcome(True, False, phase)
    return Outcome(False, False, f"{phase}: {message}" if message else phase)


def _view(rows: dict[ObjectKey, Resource | None], outcomes: dict[ObjectKey, Outcome]) -> Group:
    table = Table(box=None, pad_edge=False)
    for column in ("WORKLOAD", "PHASE", "RESTARTS", "STATE"):
        table.add_column(column)
    for key, obj in sorted(rows.items()):
        outcome = outcomes.get(key)
        phase = str(obj.status.get("phase", Phase.PENDING)) if obj else "<not found>"
        restarts = str(obj.status.get("restarts", 0)) if obj else ""
        mark = "[green]converged[/]" if outcome and outcome.converged else (outcome.reason if outcome else "")
        table.add_row(key.name, phase, restarts, mark)
    done = sum(1 for o in outcomes.values() if o.converged)
    bar = Progress(TextColumn("converged"), BarColumn(), TextColumn(f"{done}/{len(rows)}"))
    bar.add_task("", total=max(len(rows), 1), completed=done)
    return Group(table, bar)


async def wait(client: ApiClient, keys: Sequence[ObjectKey], timeout: float, console: Console,
               settle: float = 3.0) -> list[str]:
    """Follow ``keys`` until all converge or ``timeout``; the names that did not, with why.

    Once all have converged it keeps watching for ``settle`` seconds, so that a container that
    crashes right after it started is not called converged.
    """
    rows: dict[ObjectKey, Resource | None] = {key: None for key in keys}
    outcomes: dict[ObjectKey, Outcome] = {}

    def update(obj: Resource) -> None:
        if obj.key in rows:
            rows[obj.key] = obj
            outcomes[obj.key] = judge(obj)

    def settled() -> bool:
        return all(k in outcomes and (outcomes[k].converged or outcomes[k].final) for k in rows)

    async def follow(live: Live, until_settled: bool) -> None:
        while not (until_settled and settled()):
            items, version = await client.list("Workload", None)
            for obj in items:
                update(obj)
            live.update(_view(rows, outcomes))
            if until_settled and settled():
                return
            try:
                async for item in client.watch("Workload", None, resource_version=version):
                    if item.object is not None and item.type != "DELETED":
                        update(item.object)
                        live.update(_view(rows, outcomes))
                    if until_settled and settled():
                        return
            except Unavailable:
                await asyncio.sleep(0.5)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with Live(_view(rows, outcomes), console=console, refresh_per_second=8, transient=False) as live:
        for until_settled, limit in ((True, timeout), (False, settle)):
            with contextlib.suppress(TimeoutError):  # not wait_for: in 3.11 it can swallow a cancel
                async with asyncio.timeout(min(limit, deadline - loop.time())):
                    await follow(live, until_settled)
        live.update(_view(rows, outcomes))
    if not console.is_terminal:
        console.file.write("\n")  # rich ends a non-terminal Live without one; stderr lines follow
        console.file.flush()
    failed = []
    for key in keys:
        outcome = outcomes.get(key)
        if outcome is None or not outcome.converged:
            failed.append(f"workload/{key.name}: {outcome.reason if outcome else 'never seen'}")
    return failed
