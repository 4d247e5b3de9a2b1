"""End-to-end benchmarks on a real cluster (``persys.up.Cluster``: etcd, API, controllers, a docker agent).

1. apply → Running: N workloads (busybox ``sleep 3600``, network host) applied one at a time
   through ApiClient, each timed from the apply call until an API watch reports phase Running;
   interleaved with raw aiodocker create+start of the same container (image, command, labels).
2. self-heal: ``docker kill`` (the same API call through aiodocker) of a Running workload's
   container until the watch reports it Running again with ``restarts`` incremented. Run with
   the default restart policy (and, in a full run, with ``spec.backoff.initialSeconds: 0``).

Run: .venv/bin/python bench/e2e.py [--workloads 20] [--kills 10]  (writes bench/results-e2e.json)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import IMAGE, PhaseWatch, cancel_on_sigterm, latency_summary, remove_containers, running, write_results  # noqa: E402

from persys.agentd.containers import container_config  # noqa: E402
from persys.agentd.runtime import WorkloadSpec  # noqa: E402
from persys.client import ApiClient  # noqa: E402
from persys.controllers.conditions import node_ready  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.resources import REGISTRY, Resource  # noqa: E402
from persys.store.server import free_port  # noqa: E402
from persys.up import Cluster, UpConfig, check_docker, prepare_home  # noqa: E402

NAMESPACE = "bench-e2e"
WAIT_SECONDS = 60.0


def manifest(name: str, backoff: float | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "container", "image": IMAGE, "command": ["sleep", "3600"], "network": "host"}
    if backoff is not None:
        spec["backoff"] = {"initialSeconds": backoff}
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench"}}, "spec": spec}


class E2E:
    """A started cluster, an admin client, a watch on the bench namespace and a Docker client."""

    def __init__(self, cluster: Cluster, client: ApiClient, watch: PhaseWatch, docker: aiodocker.Docker) -> None:
        self.cluster, self.client, self.watch, self.docker = cluster, client, watch, docker
        self.node = cluster.config.node_name
        self.applied: dict[str, tuple[float, float]] = {}  # name -> (apply called, API answered)

    async def apply_until_running(self, name: str, backoff: float | None = None) -> tuple[float, Resource]:
        """Seconds from the apply call to the watch event saying Running; the applied object."""
        running_at = self.watch.expect(name, running)
        started = time.perf_counter()
        obj, _ = await self.client.apply(REGISTRY.parse(manifest(name, backoff)))
        self.applied[name] = (started, time.perf_counter())
        return await asyncio.wait_for(running_at, WAIT_SECONDS) - started, obj

    def breakdown(self, names: list[str]) -> dict[str, float]:
        """Median ms from the apply call to the API's answer and to the first event of each phase."""
        offsets: dict[str, list[float]] = {"api_answered": []}
        for name in names:
            started, answered = self.applied[name]
            offsets["api_answered"].append(answered - started)
            for phase, seen in self.watch.phase_times.get(name, {}).items():
                offsets.setdefault(f"phase_{phase if phase != 'None' else 'created'}", []).append(seen - started)
        return {key: round(statistics.median(values) * 1000, 1) for key, values in offsets.items()}

    async def raw_create_start(self, obj: Resource) -> float:
        """Seconds for aiodocker create + start of the container the agent made for ``obj``."""
        body = {"metadata": {"name": obj.metadata.name, "namespace": NAMESPACE, "uid": obj.metadata.uid},
                "spec": obj.spec}
        # same config; labelled for another node so that the agent never lists it
        config = container_config(WorkloadSpec.from_body(obj.metadata.uid, body), f"{self.node}-raw")
        started = time.perf_counter()
        container = await self.docker.containers.create(config, name=f"persys-raw-{obj.metadata.uid}")
        await container.start()
        return time.perf_counter() - started

    async def kill_until_healed(self, name: str) -> float:
        """Seconds from killing ``name``'s container to Running again with one more restart."""
        current = self.watch.latest[name]
        restarts = int(current.status.get("restarts") or 0)
        healed = self.watch.expect(name, lambda o: running(o) and int(o.status.get("restarts") or 0) > restarts)
        started = time.perf_counter()
        await self.docker.containers.container(f"persys-{current.metadata.uid}").kill()
        return await asyncio.wait_for(healed, WAIT_SECONDS) - started


async def apply_to_running(e2e: E2E, n: int) -> dict[str, Any]:
    persys_times: list[float] = []
    raw_times: list[float] = []
    for i in range(n + 2):  # two warm-up rounds, not counted
        elapsed, obj = await e2e.apply_until_running(f"w{i}")
        raw = await e2e.raw_create_start(obj)
        if i >= 2:
            persys_times.append(elapsed)
            raw_times.append(raw)
    persys, raw_summary = latency_summary(persys_times), latency_summary(raw_times)
    return {"n": n, "persys": persys, "raw": raw_summary,
            "breakdown_p50_ms": e2e.breakdown([f"w{i}" for i in range(2, n + 2)]),
            "ratio_p50": persys["p50_ms"] / raw_summary["p50_ms"],
            "ratio_p99": persys["p99_ms"] / raw_summary["p99_ms"]}


async def self_heal(e2e: E2E, kills: int, backoff: float | None) -> dict[str, Any]:
    """Kill ``kills`` distinct workloads one at a time (so each is its first failure)."""
    tag = "d" if backoff is None else "b"
    names = [f"heal-{tag}{i}" for i in range(kills)]
    for name in names:
        await e2e.apply_until_running(name, backoff)
    times = [await e2e.kill_until_healed(name) for name in names]
    return {"backoff_initial_seconds": backoff, **latency_summary(times)}


async def wait_node_ready(client: ApiClient, node: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes, _ = await client.list("Node", None)
        if any(n.metadata.name == node and node_ready(n) for n in nodes):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"node {node} did not become Ready")


async def run(workloads: int, kills: int, both_policies: bool) -> dict[str, Any]:
    cancel_on_sigterm()
    await check_docker()
    with tempfile.TemporaryDirectory(prefix="persys-bench-e2e-") as tmp:
        config = UpConfig(home=Path(tmp) / "home", etcd_port=free_port(), etcd_peer_port=free_port(),
                          http_port=free_port(), api_port=free_port(), controllers_port=free_port(),
                          agent_port=free_port(), dns_port=free_port(), node_name=f"bench-{secrets.token_hex(3)}")
        paths = prepare_home(config)
        cluster = Cluster(config)
        docker = aiodocker.Docker()
        client = ApiClient(config.server_url, ca=paths.ca_cert, cert=paths.cert("admin"), key=paths.key("admin"))
        watch = PhaseWatch(client, NAMESPACE)
        stop = asyncio.Event()
        cluster_task = asyncio.create_task(cluster.run(stop), name="bench-cluster")
        try:
            await asyncio.wait_for(cluster.ready.wait(), 60)
            await wait_node_ready(client, config.node_name)
            await watch.start()
            e2e = E2E(cluster, client, watch, docker)
            results: dict[str, Any] = {"node": config.node_name, "image": IMAGE}
            results["apply_to_running"] = await apply_to_running(e2e, workloads)
            results["self_heal_default"] = await self_heal(e2e, kills, None)
            if both_policies:
                results["self_heal_no_backoff"] = await self_heal(e2e, kills, 0.0)
            results["watch_events"] = watch.events
            return results
        finally:
            await asyncio.shield(shutdown(cluster, stop, cluster_task, watch, client, docker))


async def shutdown(cluster: Cluster, stop: asyncio.Event, cluster_task: asyncio.Task[None], watch: PhaseWatch,
                   client: ApiClient, docker: aiodocker.Docker) -> None:
    """Stop everything, each step bounded; the containers go last, by their node labels."""
    node = cluster.config.node_name
    await watch.close()
    await client.close()
    stop.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(cluster_task, return_exceptions=True), 30)
    cluster.etcd_server.stop()
    await remove_containers(docker, node, f"{node}-raw")
    await docker.close()


def table(results: dict[str, Any]) -> str:
    a = results["apply_to_running"]
    lines = [f"e2e apply → Running, N={a['n']} one at a time (ms)",
             f"{'path':<40}{'p50':>9}{'p99':>9}{'mean':>9}",
             *(f"{label:<40}{a[key]['p50_ms']:>9.1f}{a[key]['p99_ms']:>9.1f}{a[key]['mean_ms']:>9.1f}"
               for key, label in (("persys", "persys apply → Running (watch)"),
                                  ("raw", "raw aiodocker create+start"))),
             f"{'ratio persys/raw':<40}{a['ratio_p50']:>9.2f}{a['ratio_p99']:>9.2f}   (aim p50 ≤ 1.15)",
             "where the time goes (median ms after the apply call): " + ", ".join(
                 f"{k.removeprefix('phase_')} {v:.0f}" for k, v in a["breakdown_p50_ms"].items()),
             "", "self-heal: docker kill → Running again, restarts+1 (ms)",
             f"{'restart policy':<40}{'p50':>9}{'p99':>9}{'n':>9}"]
    for key, label in (("self_heal_default", "default (spec.backoff unset)"),
                       ("self_heal_no_backoff", "spec.backoff.initialSeconds: 0")):
        if key in results:
            h = results[key]
            lines.append(f"{label:<40}{h['p50_ms']:>9.1f}{h['p99_ms']:>9.1f}{h['n']:>9}")
    lines.append(f"{'':<40}(aim p50 < 1000 ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=20)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="5 workloads, 3 kills, default restart policy only")
    args = parser.parse_args(argv)
    if args.quick:
        args.workloads, args.kills = 5, 3
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    results = asyncio.run(asyncio.wait_for(run(args.workloads, args.kills, not args.quick), 900))
    print(table(results))
    print(f"wrote {write_results('e2e', results)}")
    return results


if __name__ == "__main__":
    main()
