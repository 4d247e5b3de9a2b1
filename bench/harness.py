"""What the benchmarks share: percentiles, result files, child processes and a phase watcher.

Every benchmark starts its own servers on free 127.0.0.1 ports and must leave nothing
behind, so child processes are started here in their own session (and die with the bench,
PR_SET_PDEATHSIG) and stopped by pid; containers are removed by the labels they were given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiodocker

from persys.client import ApiClient
from persys.resources import Resource
from persys.store.server import die_with_parent

BENCH_DIR = Path(__file__).resolve().parent
PERSYS = str(Path(sys.executable).parent / "persys")
IMAGE = "persys/busybox:local"


# -- numbers ---------------------------------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean/max of a list of durations, in milliseconds."""
    return {"p50_ms": percentile(seconds, 50) * 1000, "p99_ms": percentile(seconds, 99) * 1000,
            "mean_ms": statistics.mean(seconds) * 1000, "max_ms": max(seconds) * 1000, "n": len(seconds)}


def write_results(name: str, results: dict[str, Any]) -> Path:
    """``bench/results-<name>.json`` (with the machine's cpu count and the time of the run)."""
    out = BENCH_DIR / f"results-{name}.json"
    stamped = {"cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **results}
    out.write_text(json.dumps(stamped, indent=2) + "\n")
    return out


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- child processes -------------------------------------------------------------------------

def cancel_on_sigterm() -> None:
    """SIGTERM cancels the current task, so that its ``finally`` blocks clean up (run.py's time limit)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def spawn(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` in a session of its own, output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([*die_with_parent(), *args], stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PERSYS_LOG_LEVEL": "warning", **(env or {})},
                                start_new_session=True)  # never outlives the benchmark


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM ``process`` (by pid), SIGKILL when it lingers."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_http(url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 2xx (or raise, with the child's exit code when it died)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def remove_containers(docker: aiodocker.Docker, *nodes: str) -> int:
    """Remove every container labelled ``persys.dev/node`` = one of ``nodes``; how many."""
    removed = 0
    for node in nodes:
        for container in await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={node}"]}):
            with contextlib.suppress(aiodocker.exceptions.DockerError):
                await container.delete(force=True)
                removed += 1
    return removed


# -- observing workloads through an API watch ------------------------------------------------

Predicate = Callable[[Resource], bool]


class PhaseWatch:
    """One API watch on a namespace's workloads; ``until(name, predicate)`` waits for a state.

    The watch runs in a background task for the whole benchmark, so an observation costs no
    extra request: a waiter is resolved by the first watch event that satisfies it.
    """

    def __init__(self, client: ApiClient, namespace: str | None) -> None:
        self.client = client
        self.namespace = namespace
        self.latest: dict[str, Resource] = {}
        self.phase_times: dict[str, dict[str, float]] = {}  # name -> phase -> first seen (perf_counter)
        self._waiters: dict[str, list[tuple[Predicate, asyncio.Future[float]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.events = 0

    async def start(self) -> None:
        _, revision = await self.client.list("Workload", self.namespace)
        self._task = asyncio.create_task(self._follow(revision), name="bench-phase-watch")

    async def _follow(self, revision: str) -> None:
        async for item in self.client.watch("Workload", self.namespace, resource_version=revision):
            if item.object is None:
                continue
            self.events += 1
            obj, now = item.object, time.perf_counter()
            self.latest[obj.metadata.name] = obj
            self.phase_times.setdefault(obj.metadata.name, {}).setdefault(str(obj.status.get("phase")), now)
            waiters = self._waiters.get(obj.metadata.name, [])
            for entry in list(waiters):
                predicate, future = entry
                if predicate(obj) and not future.done():
                    future.set_result(now)
                    waiters.remove(entry)

    def expect(self, name: str, predicate: Predicate) -> asyncio.Future[float]:
        """A future resolved with the perf_counter() of the first event where ``predicate`` holds."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append((predicate, future))
        return future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def running(obj: Resource) -> bool:
    return obj.status.get("phase") == "Running"
