"""Scale benchmark: N workloads over M hollow nodes, created through the API, until all are Running.

Starts etcd (``EtcdServer``), ``persys server``, the controllers (``persys controllers`` when
that command exists, else the same ``build_manager`` in a child process of this script) and
``persys agent --runtime simulated --nodes M`` as separate processes on free 127.0.0.1 ports.
Creates the workloads at concurrency 32 and follows an API watch until every one is Running.
Reports workloads/s end to end, the API create rate, raw etcd puts of the same JSON with the
same client (``persys.store.Etcd``), the RSS and CPU seconds of every process, and (``--profile``)
where the controllers' time goes, sampled with py-spy.

Run: .venv/bin/python bench/scale.py [--workloads 10000] [--nodes 100] [--profile]
     (writes bench/results-scale.json)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # this process forks children while grpc runs

import aiohttp  # noqa: E402
from harness import IMAGE, PERSYS, cancel_on_sigterm, rss_mb, spawn, stop, wait_http, write_results  # noqa: E402
from profiles import Profiler  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.controllers.conditions import node_ready  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.security import pki  # noqa: E402
from persys.security.tls import client_context  # noqa: E402
from persys.store import Etcd  # noqa: E402
from persys.store.server import EtcdServer, free_port  # noqa: E402

NAMESPACE = "scale"
CONCURRENCY = 32


def workload(name: str) -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "scale"}},
            "spec": {"type": "container", "image": IMAGE, "command": ["sleep", "3600"], "network": "host"}}


async def rate(count: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Seconds to run ``op(0..count-1)`` with ``concurrency`` workers."""
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def free_port_range(count: int) -> int:
    """A first port P such that P … P+count-1 are all free on 127.0.0.1.

    Below Linux's ephemeral range (32768-60999), so that the connections opened between this
    check and the agents' start (etcd, API clients) cannot take one of these ports meanwhile.
    """
    for _ in range(200):
        base = secrets.randbelow(12000) + 20000
        try:
            sockets = []
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the controllers process -----------------------------------------------------------------------

def controllers_command(etcd_url: str, home: Path, listen: str) -> tuple[list[str], str]:
    """``persys controllers`` when the CLI has it, else ``build_manager`` run by this script."""
    probe = subprocess.run([PERSYS, "controllers", "--help"], capture_output=True, timeout=60)
    if probe.returncode == 0:
        return [PERSYS, "--home", str(home), "controllers", "--etcd", etcd_url, "--listen", listen], \
            "persys controllers"
    return [sys.executable, __file__, "--serve-controllers", etcd_url, str(home), listen], \
        "build_manager in a child process (persys controllers does not exist yet)"


async def serve_controllers(etcd_url: str, home: str, listen: str) -> None:
    from persys.controllers.manager import build_manager

    manager = build_manager(etcd_url, home=Path(home), listen=listen)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, manager.stop)
    await manager.run()


# -- the cluster -----------------------------------------------------------------------------------

class ScaleCluster:
    """etcd, API, controllers and hollow agents as separate processes under one temp dir."""

    def __init__(self, tmp: Path, nodes: int) -> None:
        self.tmp, self.nodes = tmp, nodes
        self.home = tmp / "home"
        self.etcd_server = EtcdServer(tmp / "etcd")
        self.api_ports = (free_port(), free_port())
        self.controllers_port = free_port()
        self.agent_base = free_port_range(nodes)
        self.node_prefix = f"sim-{secrets.token_hex(3)}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.controllers_how = ""

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_ports[1]}"

    def client(self) -> ApiClient:
        paths = pki.HomePaths(self.home)
        return ApiClient(self.api_url, ca=paths.ca_cert, cert=paths.cert("admin"), key=paths.key("admin"),
                         timeout=60.0)

    async def start(self) -> None:
        paths = pki.init(self.home, server=self.api_url)
        for i in range(self.nodes):
            pki.issue(paths, f"node-{self.node_prefix}-{i}", "agents")
        await self.etcd_server.start()
        etcd, home = self.etcd_server.url, str(self.home)
        plain, secure = self.api_ports
        self.processes["api"] = spawn([PERSYS, "--home", home, "server", "--etcd", etcd, "--listen",
                                       f"127.0.0.1:{plain}", "--secure-listen", f"127.0.0.1:{secure}"],
                                      self.tmp / "api.log")
        wait_http(f"http://127.0.0.1:{plain}/readyz", 60, self.processes["api"])
        command, self.controllers_how = controllers_command(etcd, self.home, f"127.0.0.1:{self.controllers_port}")
        self.processes["controllers"] = spawn(command, self.tmp / "controllers.log")
        self.processes["agent"] = spawn(
            [PERSYS, "--home", home, "agent", "--name", self.node_prefix, "--runtime", "simulated",
             "--nodes", str(self.nodes), "--listen", f"127.0.0.1:{self.agent_base}", "--base-port",
             str(self.agent_base), "--server", self.api_url], self.tmp / "agent.log")
        wait_http(f"http://127.0.0.1:{self.controllers_port}/healthz", 60, self.processes["controllers"])

    async def wait_nodes_ready(self, client: ApiClient, timeout: float = 120.0) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.tmp}/{name}.log")
            nodes, _ = await client.list("Node", None)
            if sum(1 for n in nodes if n.metadata.name.startswith(self.node_prefix) and node_ready(n)) >= self.nodes:
                return time.perf_counter() - started
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{self.nodes} nodes did not become Ready in {timeout:.0f}s")

    def usage(self) -> dict[str, dict[str, float]]:
        """RSS (MiB) and CPU seconds of every process, etcd included."""
        pids = {name: p.pid for name, p in self.processes.items() if p.poll() is None}
        if self.etcd_server.process is not None:
            pids["etcd"] = self.etcd_server.process.pid
        pids["bench"] = os.getpid()
        return {name: {"rss_mb": round(rss_mb(pid), 1), "cpu_s": round(cpu_seconds(pid), 1)}
                for name, pid in pids.items()}

    def stop(self) -> None:
        for name in ("agent", "controllers", "api"):
            stop(self.processes.get(name))
        self.etcd_server.stop()

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every child's log (printed when a run did not finish)."""
        tails = []
        for name in self.processes:
            path = self.tmp / f"{name}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            tails.append(f"--- {name}.log ---\n" + "\n".join(line[:300] for line in text))
        return "\n".join(tails)


# -- counting Running workloads through one API watch -------------------------------------------

class RunningCounter:
    """A raw API watch (JSON lines, no model decoding: the bench shares 2 cores with the cluster)."""

    def __init__(self, cluster: ScaleCluster, total: int) -> None:
        self.cluster, self.total = cluster, total
        self.running: set[str] = set()
        self.scheduled: set[str] = set()
        self.events = 0
        self.done = asyncio.Event()
        self.timeline: list[tuple[float, int, int]] = []  # (seconds, scheduled, running)

    async def follow(self, revision: str) -> None:
        paths = pki.HomePaths(self.cluster.home)
        ssl = client_context(paths.ca_cert, paths.cert("admin"), paths.key("admin"))
        url = f"{self.cluster.api_url}/apis/persys.dev/v1/namespaces/{NAMESPACE}/workloads"
        params = {"watch": "true", "resourceVersion": revision}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as session, \
                session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if not line.strip():
                    continue
                self.events += 1
                obj = json.loads(line).get("object") or {}
                if (obj.get("spec") or {}).get("nodeName"):
                    self.scheduled.add(obj["metadata"]["name"])
                if (obj.get("status") or {}).get("phase") == "Running":
                    self.running.add(obj["metadata"]["name"])
                    if len(self.running) >= self.total:
                        self.done.set()

    async def sample(self, started: float, every: float = 5.0) -> None:
        while not self.done.is_set():
            self.timeline.append((round(time.perf_counter() - started, 1), len(self.scheduled), len(self.running)))
            await asyncio.sleep(every)


async def measure(cluster: ScaleCluster, workloads: int, timeout: float, profiler: Profiler) -> dict[str, Any]:
    results: dict[str, Any] = {"workloads": workloads, "nodes": cluster.nodes, "concurrency": CONCURRENCY,
                               "controllers_process": cluster.controllers_how}
    async with cluster.client() as client:
        results["nodes_ready_seconds"] = round(await cluster.wait_nodes_ready(client), 2)
        etcd = Etcd(cluster.etcd_server.url)
        payload = json.dumps(workload("raw")).encode()
        try:
            seconds = await rate(workloads, CONCURRENCY, lambda i: etcd.put(f"/bench/raw/w{i}", payload))
            results["raw_etcd_puts_per_s"] = round(workloads / seconds, 1)
            await etcd.delete_prefix("/bench/raw/")
            first_revision = await etcd.revision()
        finally:
            await etcd.close()
        _, revision = await client.list("Workload", NAMESPACE)
        counter = RunningCounter(cluster, workloads)
        watch = asyncio.create_task(counter.follow(revision), name="scale-watch")
        profiler.start()
        started = time.perf_counter()
        sampler = asyncio.create_task(counter.sample(started), name="scale-sampler")
        try:
            created = await rate(workloads, CONCURRENCY, lambda i: client.request(
                "POST", client.path("workloads", NAMESPACE), body=workload(f"w{i}")))
            results["api_creates_per_s"] = round(workloads / created, 1)
            results["create_seconds"] = round(created, 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(counter.done.wait(), max(timeout - created, 1))
            elapsed = time.perf_counter() - started
        finally:
            for task in (watch, sampler):
                task.cancel()
            await asyncio.gather(watch, sampler, return_exceptions=True)
        results["profile"] = profiler.stop()
        etcd = Etcd(cluster.etcd_server.url)
        try:  # every etcd write makes a revision: writes per workload, events and heartbeats included
            last_revision = await etcd.revision()
            results["etcd_writes_per_workload"] = round((last_revision - first_revision) / workloads, 1)
            results["etcd_keys_written_per_workload"] = {
                prefix: round(count / workloads, 2)
                for prefix, count in (await keys_written(etcd, first_revision, last_revision)).most_common()}
        finally:
            await etcd.close()
        results["running"] = len(counter.running)
        results["all_running"] = len(counter.running) >= workloads
        results["seconds_to_all_running"] = round(elapsed, 2)
        results["workloads_per_s"] = round(len(counter.running) / elapsed, 1)
        results["watch_events"] = counter.events
        results["timeline"] = counter.timeline
        results["processes"] = cluster.usage()
        results["controller_rss_mb"] = results["processes"]["controllers"]["rss_mb"]
    return results


async def run(workloads: int, nodes: int, timeout: float, profile: list[str]) -> dict[str, Any]:
    cancel_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="persys-bench-scale-") as tmp:
        cluster = ScaleCluster(Path(tmp), nodes)
        profiler = Profiler(Path(tmp))
        try:
            await cluster.start()
            for name in profile:
                profiler.add(name, cluster.processes[name].pid)
            results = await measure(cluster, workloads, timeout, profiler)
            if not results["all_running"]:
                print(cluster.log_tails(), file=sys.stderr)
            return results
        except Exception:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            profiler.kill()
            cluster.stop()


async def keys_written(etcd: Etcd, first: int, last: int) -> collections.Counter[str]:
    """Keys written (puts and deletes) after revision ``first`` up to ``last``, by the first three parts of
    their path (``/persys/registry/events``): where the writes per workload go."""
    counts: collections.Counter[str] = collections.Counter()
    if last <= first:
        return counts
    async with asyncio.timeout(120):
        async for event in etcd.watch("/", first + 1):
            counts["/".join(event.key.split("/")[:4])] += 1
            if event.revision >= last:
                break
    return counts


def table(r: dict[str, Any]) -> str:
    lines = [f"scale: {r['workloads']} workloads over {r['nodes']} hollow nodes, creates at concurrency "
             f"{r['concurrency']} (controllers: {r['controllers_process']})",
             f"{'':44}{'value':>12}{'aim':>12}",
             f"{'workloads/s, create → all Running (watch)':44}{r['workloads_per_s']:>12.0f}{'≥ 500':>12}",
             f"{'seconds until all Running':44}{r['seconds_to_all_running']:>12.1f}"
             + ("" if r["all_running"] else f"   (timed out: {r['running']} Running)"),
             f"{'API creates/s (the create phase alone)':44}{r['api_creates_per_s']:>12.0f}",
             f"{'raw etcd puts/s, same JSON, same client':44}{r['raw_etcd_puts_per_s']:>12.0f}",
             f"{'end-to-end / raw etcd put':44}{r['workloads_per_s'] / r['raw_etcd_puts_per_s']:>12.2f}",
             f"{'etcd writes per workload (all components)':44}{r['etcd_writes_per_workload']:>12.1f}",
             *(f"{'  keys written per workload under ' + prefix:44}{count:>12.2f}"
               for prefix, count in r.get("etcd_keys_written_per_workload", {}).items()),
             f"{'controller RSS at the end (MiB)':44}{r['controller_rss_mb']:>12.0f}{'< 200':>12}",
             "", f"{'process':<14}{'RSS MiB':>10}{'CPU s':>10}"]
    lines += [f"{name:<14}{u['rss_mb']:>10.0f}{u['cpu_s']:>10.1f}" for name, u in r["processes"].items()]
    for name, prof in (r.get("profile") or {}).items():
        for order in ("self", "inclusive"):
            lines += ["", f"profile of {name}, top by {order} time ({prof['samples']} busy samples; "
                          "% self, % inclusive):"]
            lines += [f"  {row['self_pct']:5.1f} {row['total_pct']:5.1f}  {row['function']}"
                      for row in prof[order][:15]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=540.0, help="Give up waiting after this many seconds.")
    parser.add_argument("--profile", nargs="?", const="controllers", default="",
                        help="Sample these processes with py-spy (comma-separated: controllers,api,agent).")
    parser.add_argument("--quick", action="store_true", help="1,000 workloads over 20 nodes")
    parser.add_argument("--serve-controllers", nargs=3, metavar=("ETCD", "HOME", "LISTEN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    if args.serve_controllers:
        asyncio.run(serve_controllers(*args.serve_controllers))
        return {}
    if args.quick:
        args.workloads, args.nodes = 1000, 20
    profile = [p for p in args.profile.split(",") if p]
    results = asyncio.run(run(args.workloads, args.nodes, args.timeout, profile))
    print(table(results))
    print(f"wrote {write_results('scale', results)}")
    return results


if __name__ == "__main__":
    main()
