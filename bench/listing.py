"""Listing benchmark: 10,000 workloads through the API (ApiClient.list) and the CLI (``persys get``).

Starts etcd and ``persys server`` on free 127.0.0.1 ports, stores N workloads that look like
running ones (status with phase, container id, conditions, last reconcile) through
``ObjectStore.create``, then times: ``ApiClient.list`` of all namespaces (p50 of 5), the raw
HTTP request alone, and ``persys get workloads -A`` / ``-A -o json`` as subprocesses (wall
time, p50 of 3), next to ``persys get workloads`` of an empty namespace (the CLI's own start-up).

Run: .venv/bin/python bench/listing.py [--workloads 10000]  (writes bench/results-listing.json)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # this process forks children while grpc runs

import aiohttp  # noqa: E402
from harness import IMAGE, PERSYS, cancel_on_sigterm, spawn, stop, wait_http, write_results  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.resources import REGISTRY  # noqa: E402
from persys.resources.model import now_iso  # noqa: E402
from persys.security import pki  # noqa: E402
from persys.security.tls import client_context  # noqa: E402
from persys.store import Etcd, ObjectStore  # noqa: E402
from persys.store.server import EtcdServer, free_port  # noqa: E402

NAMESPACES = ("list-a", "list-b")


def running_workload(i: int) -> dict[str, Any]:
    """A workload as it looks once Running (so the listed objects have a realistic size)."""
    now = now_iso()
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": f"w{i}", "namespace": NAMESPACES[i % 2],
                         "labels": {"app": "list", "shard": str(i % 7)}},
            "spec": {"type": "container", "image": IMAGE, "command": ["sleep", "3600"], "network": "host",
                     "nodeName": f"node-{i % 100}", "resources": {"cpu": "10m", "memory": "8Mi"}},
            "status": {"phase": "Running", "nodeName": f"node-{i % 100}", "containerID": secrets.token_hex(32),
                       "containerState": "running", "restarts": 0, "startedAt": now, "observedGeneration": 1,
                       "conditions": [{"type": t, "status": "True", "reason": r, "message": m,
                                       "lastTransitionTime": now}
                                      for t, r, m in (("Scheduled", "Scheduled", f"assigned to node-{i % 100}"),
                                                      ("Ready", "ContainerRunning", "container is running"))],
                       "lastReconcile": {"time": now, "action": "none", "result": "ok",
                                         "message": "container is running"}}}


async def populate(etcd: Etcd, count: int, concurrency: int = 32) -> float:
    store = ObjectStore(etcd, REGISTRY)
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            await store.create(REGISTRY.parse(running_workload(i)))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def api_listing(home: pki.HomePaths, url: str, rounds: int = 5) -> dict[str, Any]:
    """p50 seconds of ApiClient.list (all namespaces) and of the raw HTTP request + body alone."""
    times: list[float] = []
    count = 0
    async with ApiClient(url, ca=home.ca_cert, cert=home.cert("admin"), key=home.key("admin"), timeout=120) as c:
        for _ in range(rounds):
            started = time.perf_counter()
            items, _ = await c.list("Workload", None)
            times.append(time.perf_counter() - started)
            count = len(items)
    raw: list[float] = []
    size = 0
    ssl = client_context(home.ca_cert, home.cert("admin"), home.key("admin"))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as session:
        for _ in range(rounds):
            started = time.perf_counter()
            async with session.get(f"{url}/apis/persys.dev/v1/workloads") as resp:
                size = len(await resp.read())
            raw.append(time.perf_counter() - started)
    return {"items": count, "body_mb": round(size / 1e6, 2), "client_list_p50_s": statistics.median(times),
            "client_list_all_s": times, "http_p50_s": statistics.median(raw)}


def cli_time(home: Path, args: list[str], rounds: int = 3) -> dict[str, Any]:
    """p50 wall seconds of ``persys --home HOME ARGS`` and the lines it printed."""
    times, lines = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        result = subprocess.run([PERSYS, "--home", str(home), *args], capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise RuntimeError(f"persys {' '.join(args)} failed: {result.stderr[-2000:]}")
        lines = result.stdout.count("\n")
    return {"command": "persys " + " ".join(args), "p50_s": statistics.median(times), "all_s": times,
            "lines": lines}


async def run(count: int) -> dict[str, Any]:
    cancel_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="persys-bench-list-") as tmp:
        etcd_server = EtcdServer(Path(tmp) / "etcd")
        plain, secure = free_port(), free_port()
        url = f"https://127.0.0.1:{secure}"
        home = pki.init(Path(tmp) / "home", server=url)
        pki.write_config(home, url, force=True)
        api = None
        etcd = None
        try:
            await etcd_server.start()
            etcd = Etcd(etcd_server.url, timeout=30)
            api = spawn([PERSYS, "--home", str(home.home), "server", "--etcd", etcd_server.url,
                         "--listen", f"127.0.0.1:{plain}", "--secure-listen", f"127.0.0.1:{secure}"],
                        Path(tmp) / "api.log")
            wait_http(f"http://127.0.0.1:{plain}/readyz", 60, api)
            results: dict[str, Any] = {"workloads": count, "populate_s": round(await populate(etcd, count), 2)}
            results["api"] = await api_listing(home, url)
            results["cli"] = [cli_time(home.home, args) for args in (["get", "workloads", "-n", "empty"],
                                                                     ["get", "workloads", "-A"],
                                                                     ["get", "workloads", "-A", "-o", "json"])]
            return results
        finally:
            stop(api)
            if etcd is not None:
                await etcd.close()
            etcd_server.stop()


def table(r: dict[str, Any]) -> str:
    a = r["api"]
    lines = [f"listing {a['items']} workloads ({a['body_mb']} MB of JSON), wall time",
             f"{'how':<48}{'p50 ms':>10}",
             f"{'ApiClient.list (all namespaces, decoded)':<48}{a['client_list_p50_s'] * 1000:>10.0f}",
             f"{'raw HTTPS GET, body read (no decoding)':<48}{a['http_p50_s'] * 1000:>10.0f}"]
    for c in r["cli"]:
        lines.append(f"{c['command'] + ' (' + str(c['lines']) + ' lines)':<48}{c['p50_s'] * 1000:>10.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 workloads")
    args = parser.parse_args(argv)
    if args.quick:
        args.workloads = 2000
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    results = asyncio.run(asyncio.wait_for(run(args.workloads), 600))
    print(table(results))
    print(f"wrote {write_results('listing', results)}")
    return results


if __name__ == "__main__":
    main()
