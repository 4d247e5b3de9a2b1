"""Deployment benchmark: a rolling update of 100 replicas over 20 hollow nodes.

The cluster is bench/scale.py's (etcd, ``persys server``, ``persys controllers``, which runs the
Deployment controller, and hollow agents as separate processes). In the same run:

- baseline: the same 100 Workloads created directly through the API until all are Running;
- a Deployment of 100 replicas created until all are available (the controller on top);
- the rolling update: its image changed, until every replica runs the new one and is available
  (``status`` complete), with the default strategy (maxSurge 25%, maxUnavailable 25%).

During the update one API watch of the Workloads counts the Deployment's available replicas
(``persys.deployments.rollout.is_ready``, not being deleted) at every event, so "the most ever
unavailable" is exact at each revision, not sampled; the promise is ≤ maxUnavailable (25).

Run: .venv/bin/python bench/deployment.py [--replicas 100] [--nodes 20]   (writes bench/results-deployment.json)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # this process forks children while grpc runs

from harness import IMAGE, cancel_on_sigterm, write_results  # noqa: E402
from scale import CONCURRENCY, ScaleCluster, rate  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.deployments.rollout import is_ready  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.resources import Resource  # noqa: E402
from persys.resources.deployments import surge_and_unavailable  # noqa: E402

BASELINE, ROLLOUT = "baseline", "rollout"  # namespaces
V2 = "persys/busybox:v2"  # hollow nodes run any image


def plain_workload(i: int) -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": {"name": f"w{i}", "namespace": BASELINE},
            "spec": {"image": IMAGE, "command": ["sleep", "3600"]}}


def deployment(replicas: int, image: str) -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ROLLOUT},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"image": image, "command": ["sleep", "3600"]}}}}


async def baseline(client: ApiClient, count: int, timeout: float) -> dict[str, Any]:
    """Create ``count`` Workloads directly at concurrency 32; seconds until all are Running (one API watch)."""
    _, revision = await client.list("Workload", BASELINE)
    path = client.path("Workload", BASELINE)
    running: set[str] = set()

    async def follow() -> None:
        async for item in client.watch("Workload", BASELINE, resource_version=revision):
            if item.object is not None and item.object.status.get("phase") == "Running":
                running.add(item.object.metadata.name)
                if len(running) >= count:
                    return

    started = time.perf_counter()
    watching = asyncio.create_task(follow(), name="baseline-watch")
    created = await rate(count, CONCURRENCY, lambda i: client.request("POST", path, body=plain_workload(i)))
    await asyncio.wait_for(watching, timeout)
    return {"objects": count, "create_seconds": round(created, 2), "seconds": round(time.perf_counter() - started, 2)}


def complete(obj: Resource, replicas: int) -> bool:
    s = obj.status
    return (s.get("observedGeneration") == obj.metadata.generation
            and s.get("updatedReplicas") == s.get("availableReplicas") == s.get("replicas") == replicas)


class Availability:
    """The Deployment's available replicas at every Workload event; the fewest seen."""

    def __init__(self, owner: Resource) -> None:
        self.owner = owner
        self.objects: dict[str, Resource] = {}
        self.lowest: int | None = None
        self.events = 0

    def count(self) -> int:
        uid = self.owner.metadata.uid
        return sum(1 for w in self.objects.values()
                   if not w.metadata.deletionTimestamp and is_ready(w)[0]
                   and any(r.controller and r.uid == uid for r in w.metadata.ownerReferences))

    async def follow(self, client: ApiClient) -> None:
        items, revision = await client.list("Workload", ROLLOUT)
        self.objects = {w.metadata.name: w for w in items}
        self.lowest = self.count()
        async for item in client.watch("Workload", ROLLOUT, resource_version=revision):
            if item.object is None:
                continue
            self.events += 1
            if item.type == "DELETED":
                self.objects.pop(item.object.metadata.name, None)
            else:
                self.objects[item.object.metadata.name] = item.object
            self.lowest = min(self.lowest, self.count())


async def until_complete(client: ApiClient, replicas: int, timeout: float) -> Resource:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        obj = await client.get("Deployment", "web", ROLLOUT)
        if complete(obj, replicas):
            return obj
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the Deployment did not complete within {timeout:g}s")


async def run(replicas: int, nodes: int, timeout: float) -> dict[str, Any]:
    cancel_on_sigterm()
    results: dict[str, Any] = {"replicas": replicas, "nodes": nodes,
                               "start_latency": float(os.environ.get("PERSYS_SIM_START_LATENCY") or 0)}
    with tempfile.TemporaryDirectory(prefix="persys-bench-deployment-") as tmp:
        cluster = ScaleCluster(Path(tmp), nodes)
        try:
            await cluster.start()
            async with cluster.client() as client, cluster.client() as watcher:
                await cluster.wait_nodes_ready(client)
                results["baseline"] = await baseline(watcher, replicas, timeout)
                started = time.perf_counter()
                await client.apply_raw(deployment(replicas, IMAGE))
                first = await until_complete(client, replicas, timeout)
                results["create_seconds"] = round(time.perf_counter() - started, 2)
                watch = Availability(first)
                task = asyncio.create_task(watch.follow(watcher), name="availability")
                await asyncio.sleep(0.5)  # the watch is listed and open before the change
                started = time.perf_counter()
                await client.apply_raw(deployment(replicas, V2))
                done = await until_complete(client, replicas, timeout)
                results["rollout_seconds"] = round(time.perf_counter() - started, 2)
                await asyncio.sleep(0.5)  # the last events reach the watch
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                results["max_surge"], results["max_unavailable"] = surge_and_unavailable(done.spec)
                results["most_unavailable"] = replicas - (watch.lowest if watch.lowest is not None else 0)
                results["watch_events"] = watch.events
                results["revisions"] = [r["revision"] for r in done.status.get("revisions") or []]
                results["processes"] = cluster.usage()
            return results
        except Exception:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            cluster.stop()


def table(r: dict[str, Any]) -> str:
    b = r["baseline"]
    return "\n".join([
        f"deployment: {r['replicas']} replicas over {r['nodes']} hollow nodes (containers start in "
        f"{r['start_latency']:g}s), maxSurge {r['max_surge']}, maxUnavailable {r['max_unavailable']}",
        f"{'':56}{'value':>10}{'aim':>12}",
        f"{'baseline: ' + str(b['objects']) + ' Workloads created directly → Running (s)':56}{b['seconds']:>10.2f}",
        f"{'Deployment created → all available (s)':56}{r['create_seconds']:>10.2f}",
        f"{'rolling update: image changed → complete (s)':56}{r['rollout_seconds']:>10.2f}",
        f"{'rolling update / baseline':56}{r['rollout_seconds'] / b['seconds']:>10.2f}",
        f"{'most replicas ever unavailable during the update':56}{r['most_unavailable']:>10}"
        f"{'≤ ' + str(r['max_unavailable']):>12}",
        f"{'Workload events watched during the update':56}{r['watch_events']:>10}",
    ])


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--start-latency", type=float, default=1.0,
                        help="Seconds a hollow container takes to start (PERSYS_SIM_START_LATENCY), for both runs.")
    parser.add_argument("--timeout", type=float, default=300.0, help="Give up waiting for convergence after this.")
    parser.add_argument("--quick", action="store_true", help="40 replicas over 8 nodes")
    args = parser.parse_args()
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    if args.quick:
        args.replicas, args.nodes = 40, 8
    os.environ["PERSYS_SIM_START_LATENCY"] = str(args.start_latency)  # read by the hollow agents it spawns
    results = asyncio.run(run(args.replicas, args.nodes, args.timeout))
    print(table(results))
    print(f"wrote {write_results('deployment', results)}")
    return results


if __name__ == "__main__":
    main()
