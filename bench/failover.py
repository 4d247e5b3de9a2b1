"""Leader failover benchmark: kill -9 the leading controller manager, then time a new workload to Running.

Starts etcd, ``persys server``, two ``persys controllers`` (one leads, one is a warm standby) and
``persys agent --runtime simulated`` with hollow nodes, as separate processes (``bench/scale.py``'s
cluster). Then:

1. baseline: a new workload's create → Running with a healthy leader, one at a time;
2. flapping: the leader key is watched while 1,000 workloads are created at concurrency 32 and
   converge; every change of leader during that load is a flap (there should be none);
3. failover, ``--kills`` times: kill -9 the leader (its pid is in its identity), create a workload at
   once, and time it to Running; also when the standby took the lease. The killed manager is
   started again as the next standby.

Run: .venv/bin/python bench/failover.py [--kills 5] [--nodes 10] [--quick]
     (prints a table, writes bench/results-failover.json)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # this process forks children while grpc runs

from harness import cancel_on_sigterm, spawn, wait_http, write_results  # noqa: E402
from scale import CONCURRENCY, NAMESPACE, ScaleCluster, controllers_command, rate, workload  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.controllers.config import ControllersConfig  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.store import Etcd  # noqa: E402
from persys.store.keys import leader_key  # noqa: E402
from persys.store.server import free_port  # noqa: E402

LEADER = leader_key("controllers")


class Failover:
    """The scale cluster with a second controller manager, and the leader key followed."""

    def __init__(self, cluster: ScaleCluster) -> None:
        self.cluster = cluster
        self.managers: dict[str, Any] = {}  # name -> Popen
        self.changes: list[tuple[float, str]] = []  # (time, identity) each time the key is written anew
        self.changed = asyncio.Event()

    async def start_standby(self, name: str) -> None:
        port = free_port()
        command, _ = controllers_command(self.cluster.etcd_server.url, self.cluster.home, f"127.0.0.1:{port}")
        self.managers[name] = spawn(command, self.cluster.tmp / f"{name}.log")
        wait_http(f"http://127.0.0.1:{port}/healthz", 60, self.managers[name])

    async def follow(self, etcd: Etcd) -> None:
        revision = await etcd.revision()
        async for event in etcd.watch(LEADER, revision + 1):
            if event.key == LEADER and event.type == "PUT":
                self.changes.append((time.perf_counter(), event.value.decode()))
                self.changed.set()

    async def leader_pid(self, etcd: Etcd) -> int:
        while True:
            kv = await etcd.get(LEADER)
            if kv is not None:
                return int(kv.value.decode().split("-")[-2])  # host-pid-id (persys.runtime.leader)
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        for process in self.managers.values():
            if process.poll() is None:
                process.terminate()
                process.wait(15)


async def to_running(client: ApiClient, name: str, timeout: float = 60.0) -> float:
    """Seconds from the create call to the workload's phase Running (polled every 20 ms)."""
    started = time.perf_counter()
    await client.request("POST", client.path("workloads", NAMESPACE), body=workload(name))
    while time.perf_counter() - started < timeout:
        obj = await client.get("Workload", name, NAMESPACE)
        if obj.status.get("phase") == "Running":
            return time.perf_counter() - started
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{name} was not Running {timeout:.0f}s after its create")


async def measure(cluster: ScaleCluster, kills: int, load: int) -> dict[str, Any]:
    failover = Failover(cluster)
    failover.managers["controllers"] = cluster.processes.pop("controllers")
    await failover.start_standby("standby-0")
    etcd = Etcd(cluster.etcd_server.url)
    follower = asyncio.create_task(failover.follow(etcd), name="leader-follower")
    results: dict[str, Any] = {"lease_ttl": ControllersConfig().lease_ttl, "nodes": cluster.nodes, "load": load}
    try:
        async with cluster.client() as client:
            await cluster.wait_nodes_ready(client)
            results["baseline_s"] = [round(await to_running(client, f"base-{i}"), 3) for i in range(5)]
            flaps_before = len(failover.changes)
            started = time.perf_counter()
            await rate(load, CONCURRENCY, lambda i: client.request(
                "POST", client.path("workloads", NAMESPACE), body=workload(f"load-{i}")))
            while time.perf_counter() - started < 300:
                items, _ = await client.list("Workload", NAMESPACE)
                if sum(1 for o in items if o.status.get("phase") == "Running") >= load + 5:
                    break
                await asyncio.sleep(1.0)
            results["load_seconds"] = round(time.perf_counter() - started, 1)
            results["flaps_under_load"] = len(failover.changes) - flaps_before
            runs: list[dict[str, float]] = []
            for k in range(kills):
                pid = await failover.leader_pid(etcd)
                victim = next(name for name, p in failover.managers.items() if p.pid == pid and p.poll() is None)
                seen = len(failover.changes)
                failover.changed.clear()
                killed = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                failover.managers[victim].wait(10)
                running = await to_running(client, f"after-kill-{k}")
                await failover.changed.wait()
                runs.append({"new_workload_running_s": round(running, 3),
                             "standby_leads_s": round(failover.changes[seen][0] - killed, 3)})
                del failover.managers[victim]
                await failover.start_standby(f"standby-{k + 1}")
                await asyncio.sleep(1.0)  # the new standby's informers sync
            results["kills"] = runs
        running_times = [r["new_workload_running_s"] for r in runs]
        results["failover_running_p50_s"] = round(statistics.median(running_times), 3)
        results["failover_running_max_s"] = max(running_times)
        results["standby_leads_p50_s"] = round(statistics.median(r["standby_leads_s"] for r in runs), 3)
        results["baseline_p50_s"] = round(statistics.median(results["baseline_s"]), 3)
        return results
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await etcd.close()
        failover.stop()


def table(r: dict[str, Any]) -> str:
    return "\n".join([
        f"leader failover: lease_ttl {r['lease_ttl']} s, {r['nodes']} hollow nodes, kill -9 of the leader ×"
        f"{len(r['kills'])}",
        f"{'':48}{'p50':>8}{'max':>8}{'aim':>8}",
        f"{'kill -9 → a new workload Running (s)':48}{r['failover_running_p50_s']:>8.2f}"
        f"{r['failover_running_max_s']:>8.2f}{'< 5':>8}",
        f"{'kill -9 → the standby holds the lease (s)':48}{r['standby_leads_p50_s']:>8.2f}",
        f"{'raw: a new workload Running, healthy leader (s)':48}{r['baseline_p50_s']:>8.2f}"
        f"{max(r['baseline_s']):>8.2f}",
        f"leader changes while {r['load']} workloads converged ({r['load_seconds']} s): {r['flaps_under_load']} "
        "(aim: 0)"])


async def run(kills: int, nodes: int, load: int) -> dict[str, Any]:
    cancel_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="persys-bench-failover-") as tmp:
        cluster = ScaleCluster(Path(tmp), nodes)
        try:
            await cluster.start()
            return await measure(cluster, kills, load)
        except Exception:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--load", type=int, default=1000, help="workloads created while flaps are counted")
    parser.add_argument("--quick", action="store_true", help="2 kills, a load of 200")
    args = parser.parse_args()
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    kills, load = (2, 200) if args.quick else (args.kills, args.load)
    results = asyncio.run(run(kills, args.nodes, load))
    print(table(results))
    print(f"wrote {write_results('failover', results)}")


if __name__ == "__main__":
    main()
