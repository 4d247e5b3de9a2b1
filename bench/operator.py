"""Operator benchmark: 1,000 Websites through ``persys operator run`` on hollow nodes, until all are Ready.

The cluster is bench/scale.py's (etcd, ``persys server``, ``persys controllers``, hollow agents as
separate processes). In the same run, as the baseline, the same number of Workloads (the ones the
operator would make) are created straight through the API until all are Running: what the
operator adds on top is the difference. Then the Website operator of examples/operators runs as
its own process with an operators-role certificate, Websites are created through the API, and one
API watch counts them Ready. Reports objects/s for both, the operator's RSS and CPU seconds, and
how long an API-backed informer (``persys.operator.informer``, what an operator's cache is) takes
to list 10,000 objects, against a raw etcd range read of the same keys.

Run: .venv/bin/python bench/operator.py [--objects 1000] [--nodes 20] [--relist 10000]
     (writes bench/results-operator.json)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # this process forks children while grpc runs

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from harness import IMAGE, PERSYS, cancel_on_sigterm, rss_mb, spawn, stop, wait_http, write_results  # noqa: E402
from scale import CONCURRENCY, ScaleCluster, cpu_seconds, rate  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.operator.informer import api_informer  # noqa: E402
from persys.resources import Resource  # noqa: E402
from persys.resources.kinds import default_registry  # noqa: E402
from persys.security import pki  # noqa: E402
from persys.security.tls import client_context  # noqa: E402
from persys.store import Etcd, ObjectStore  # noqa: E402
from persys.store.keys import kind_prefix  # noqa: E402
from persys.store.server import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEBSITE = ROOT / "examples" / "operators" / "website"
OPERATOR = "website-operator"
BASELINE, SITES, RELIST = "baseline", "sites", "relist"  # namespaces
FIRST_PORT = 20000  # each site and baseline workload its own host port: no two collide on a hollow node


def website(i: int) -> dict[str, Any]:
    return {"apiVersion": "web.example.com/v1", "kind": "Website", "metadata": {"name": f"s{i}", "namespace": SITES},
            "spec": {"port": FIRST_PORT + i, "html": f"<h1>site {i}</h1>", "image": IMAGE}}


def plain_workload(i: int) -> dict[str, Any]:
    """What the operator makes of ``website(i)``, created directly (the baseline)."""
    return {"apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": {"name": f"w{i}", "namespace": BASELINE},
            "spec": {"image": IMAGE, "command": ["sh", "-c", "httpd -f"], "network": "host",
                     "env": {"HTML": f"<h1>site {i}</h1>", "PORT": str(FIRST_PORT + i)},
                     "ports": [{"name": "http", "containerPort": FIRST_PORT + i, "hostPort": FIRST_PORT + i}]}}


async def count_until(cluster: ScaleCluster, path: str, revision: str, total: int,
                      done: Any, timeout: float) -> int:
    """Follow a raw API watch of ``path`` until ``total`` objects satisfy ``done(obj)``; how many did."""
    paths = pki.HomePaths(cluster.home)
    ssl = client_context(paths.ca_cert, paths.cert("admin"), paths.key("admin"))
    seen: set[str] = set()

    async def follow() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as session, \
                session.get(f"{cluster.api_url}{path}", params={"watch": "true", "resourceVersion": revision},
                            timeout=aiohttp.ClientTimeout(total=None)) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                obj = json.loads(line).get("object") if line.strip() else None
                if obj and done(obj):
                    seen.add(obj["metadata"]["name"])
                    if len(seen) >= total:
                        return

    try:
        await asyncio.wait_for(follow(), timeout)
    except TimeoutError:
        pass
    return len(seen)


async def converge(cluster: ScaleCluster, client: ApiClient, kind: str, namespace: str, count: int,
                   make: Any, done: Any, timeout: float) -> dict[str, Any]:
    """Create ``count`` objects (``make(i)``) at concurrency 32; seconds until all are ``done``."""
    _, revision = await client.list(kind, namespace)
    path = client.path(kind, namespace)
    started = time.perf_counter()
    counting = asyncio.create_task(count_until(cluster, path, str(revision), count, done, timeout))
    created = await rate(count, CONCURRENCY, lambda i: client.request("POST", path, body=make(i)))
    finished = await counting
    elapsed = time.perf_counter() - started
    return {"objects": count, "done": finished, "create_seconds": round(created, 2),
            "seconds": round(elapsed, 2), "per_s": round(finished / elapsed, 1)}


async def relist(cluster: ScaleCluster, client: ApiClient, count: int) -> dict[str, Any]:
    """An API-backed informer's first list of ``count`` Websites, against a raw etcd range read of them."""
    registry = default_registry()
    registry.register(client.registry.get("Website"))
    kind = registry.get("Website")
    etcd = Etcd(cluster.etcd_server.url)
    store = ObjectStore(etcd, registry)
    try:  # written straight to etcd: the objects are the subject here, not the create path
        template = registry.parse({**website(0), "metadata": {"name": "r", "namespace": RELIST}})
        await rate(count, CONCURRENCY, lambda i: store.create(renamed(template, f"r{i}")))
        started = time.perf_counter()
        raw, _ = await etcd.range(kind_prefix(kind, RELIST))
        raw_seconds = time.perf_counter() - started
    finally:
        await etcd.close()
    informer = api_informer(client, "Website", namespace=RELIST)
    started = time.perf_counter()
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced(120)
        seconds = time.perf_counter() - started
        cached = len(informer.objects())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {"objects": cached, "seconds": round(seconds, 3), "raw_etcd_range_seconds": round(raw_seconds, 3),
            "raw_keys": len(raw), "ratio": round(seconds / raw_seconds, 1) if raw_seconds else None}


def renamed(obj: Resource, name: str) -> Resource:
    copy = obj.copy()
    copy.metadata.name = name
    return copy


async def run(objects: int, nodes: int, relist_count: int, timeout: float) -> dict[str, Any]:
    cancel_on_sigterm()
    results: dict[str, Any] = {"objects": objects, "nodes": nodes, "concurrency": CONCURRENCY}
    with tempfile.TemporaryDirectory(prefix="persys-bench-operator-") as tmp:
        cluster = ScaleCluster(Path(tmp), nodes)
        operator = None
        try:
            await cluster.start()
            paths = pki.HomePaths(cluster.home)
            pki.issue(paths, OPERATOR, "operators")
            async with cluster.client() as client:
                await cluster.wait_nodes_ready(client)
                running = lambda obj: (obj.get("status") or {}).get("phase") == "Running"  # noqa: E731
                results["baseline"] = await converge(cluster, client, "Workload", BASELINE, objects, plain_workload,
                                                     running, timeout)
                for document in yaml.safe_load_all((WEBSITE / "definition.yaml").read_text()):
                    await client.apply_raw(document)
                await client.discover()
                listen = free_port()
                operator = spawn([PERSYS, "--home", str(cluster.home), "operator", "run", str(WEBSITE / "website.py"),
                                  "--server", cluster.api_url, "--identity", OPERATOR, "--listen",
                                  f"127.0.0.1:{listen}"], cluster.tmp / "operator.log")
                wait_http(f"http://127.0.0.1:{listen}/healthz", 60, operator)
                ready = lambda obj: (obj.get("status") or {}).get("phase") == "Ready"  # noqa: E731
                results["operator"] = await converge(cluster, client, "Website", SITES, objects, website, ready,
                                                     timeout)
                results["operator_rss_mb"] = round(rss_mb(operator.pid), 1)
                results["operator_cpu_s"] = round(cpu_seconds(operator.pid), 1)
                stop(operator)
                results["relist"] = await relist(cluster, client, relist_count)
                results["processes"] = cluster.usage()
            return results
        except Exception:
            print(cluster.log_tails(), file=sys.stderr)
            raise
        finally:
            stop(operator)
            cluster.stop()


def table(r: dict[str, Any]) -> str:
    b, o, rl = r["baseline"], r["operator"], r["relist"]
    lines = [f"operator: {r['objects']} objects over {r['nodes']} hollow nodes, created at concurrency "
             f"{r['concurrency']}",
             f"{'':52}{'value':>10}{'aim':>10}",
             f"{'baseline: Workloads → all Running, objects/s':52}{b['per_s']:>10.0f}",
             f"{'operator: Websites → all Ready, objects/s':52}{o['per_s']:>10.0f}{'≥ 100':>10}",
             f"{'operator / baseline':52}{o['per_s'] / b['per_s']:>10.2f}",
             f"{'Websites Ready / created':52}{o['done']:>5}/{o['objects']:<4}",
             f"{'operator RSS at the end (MiB)':52}{r['operator_rss_mb']:>10.0f}{'≤ 150':>10}",
             f"{'operator CPU seconds':52}{r['operator_cpu_s']:>10.1f}",
             f"{'API informer relist of ' + str(rl['objects']) + ' objects (s)':52}{rl['seconds']:>10.2f}{'< 2':>10}",
             f"{'raw etcd range read of the same keys (s)':52}{rl['raw_etcd_range_seconds']:>10.2f}"]
    return "\n".join(lines)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--relist", type=int, default=10_000, help="Objects the API-backed informer lists.")
    parser.add_argument("--timeout", type=float, default=300.0, help="Give up waiting for convergence after this.")
    parser.add_argument("--quick", action="store_true", help="200 objects, 2,000 relisted")
    args = parser.parse_args()
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    if args.quick:
        args.objects, args.relist = 200, 2000
    results = asyncio.run(run(args.objects, args.nodes, args.relist, args.timeout))
    print(table(results))
    print(f"wrote {write_results('operator', results)}")
    return results


if __name__ == "__main__":
    main()
