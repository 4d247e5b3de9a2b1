"""Gateway benchmark: the same requests through ``persys gateway`` and straight to the API over mTLS.

Starts etcd, ``persys server`` and ``persys gateway`` as separate processes on free 127.0.0.1 ports,
makes a session as a GitHub login would (``Sessions.create``: the token is the gateway's own, GitHub
is not involved in a request) and binds its user ``admin`` cluster-wide. Then, in the same run:

- GET of one workload, one at a time, alternating direct and gateway: latency p50/p99;
- the same GET at concurrency 32 for a few seconds each way: requests/s;
- a watch open both ways at once: for each workload created, the time until each stream shows it.

Aims (issue 12): gateway p50 ≤ 1.3 × direct, throughput ≥ 0.7 × direct.

Run: .venv/bin/python bench/gateway.py [--requests 500] [--seconds 5] [--events 100]
     (writes bench/results-gateway.json)
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

from harness import IMAGE, PERSYS, cancel_on_sigterm, latency_summary, spawn, stop, wait_http, write_results  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.gateway.config import GitHubSettings  # noqa: E402
from persys.gateway.github import GitHub, GitHubUser  # noqa: E402
from persys.gateway.server import token_key_path  # noqa: E402
from persys.gateway.sessions import Sessions  # noqa: E402
from persys.gateway.tokens import Tokens, ensure_signing_key  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.resources import REGISTRY  # noqa: E402
from persys.security import pki  # noqa: E402
from persys.store.server import EtcdServer, free_port  # noqa: E402

NAMESPACE = "bench-gateway"
CONCURRENCY = 32


def workload(name: str) -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"image": IMAGE, "command": ["sleep", "3600"], "desiredState": "Stopped"}}


async def login_as(admin: ApiClient, home: Path) -> str:
    """An access token of a session for github:bench, made as the gateway makes one after a login."""
    tokens = Tokens(ensure_signing_key(token_key_path(home)), access_ttl=3600)
    sessions = Sessions(admin, tokens, GitHub(GitHubSettings()), refresh_ttl=3600)
    issued = await sessions.create(GitHubUser("bench", (), ()), "not-a-github-token", "bench")
    await admin.apply_raw({"apiVersion": "persys.dev/v1", "kind": "ClusterRoleBinding",
                           "metadata": {"name": "bench-admin"},
                           "spec": {"role": "admin", "subjects": [{"kind": "github-user", "name": "bench"}]}})
    return issued.access_token


async def latencies(direct: ApiClient, gateway: ApiClient, path: str, n: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"direct": [], "gateway": []}
    for _ in range(n):
        for name, client in (("direct", direct), ("gateway", gateway)):
            started = time.perf_counter()
            await client.request("GET", path)
            times[name].append(time.perf_counter() - started)
    out = {name: latency_summary(values) for name, values in times.items()}
    out["ratio_p50"] = out["gateway"]["p50_ms"] / out["direct"]["p50_ms"]
    return out


async def throughput(client: ApiClient, path: str, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await client.request("GET", path)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def watch_delays(admin: ApiClient, direct: ApiClient, gateway: ApiClient, events: int) -> dict[str, Any]:
    """For each workload created: seconds until a direct watch and a gateway watch show it."""
    _, version = await admin.list("Workload", NAMESPACE)
    seen: dict[str, dict[str, float]] = {"direct": {}, "gateway": {}}
    arrived = asyncio.Event()  # set when both streams have shown the workload just created

    async def follow(name: str, client: ApiClient) -> None:
        async for item in client.watch("Workload", NAMESPACE, resource_version=version):
            if item.object is not None and item.type == "ADDED":
                seen[name][item.object.metadata.name] = time.perf_counter()
                if all(item.object.metadata.name in names for names in seen.values()):
                    arrived.set()

    tasks = [asyncio.create_task(follow(name, client)) for name, client in (("direct", direct), ("gateway", gateway))]
    delays: dict[str, list[float]] = {"direct": [], "gateway": []}
    try:
        await asyncio.sleep(0.5)  # both streams open
        for i in range(events):
            name = f"w{i}"
            arrived.clear()
            started = time.perf_counter()
            await admin.create(REGISTRY.parse(workload(name)))
            await asyncio.wait_for(arrived.wait(), 30)
            for stream in seen:
                delays[stream].append(seen[stream][name] - started)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    out = {name: latency_summary(values) for name, values in delays.items()}
    out["ratio_p50"] = out["gateway"]["p50_ms"] / out["direct"]["p50_ms"]
    return out


async def run(requests: int, seconds: float, events: int) -> dict[str, Any]:
    cancel_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="persys-bench-gateway-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        plain, secure, gateway_port = free_port(), free_port(), free_port()
        paths = pki.init(home, server=f"https://127.0.0.1:{secure}")
        pki.issue(paths, "gateway", "gateway")
        etcd = EtcdServer(tmp / "etcd")
        await etcd.start()
        processes = []
        try:
            processes.append(spawn([PERSYS, "--home", str(home), "server", "--etcd", etcd.url, "--listen",
                                    f"127.0.0.1:{plain}", "--secure-listen", f"127.0.0.1:{secure}", "--zone", ""],
                                   tmp / "api.log"))
            wait_http(f"http://127.0.0.1:{plain}/readyz", 60, processes[0])
            processes.append(spawn([PERSYS, "--home", str(home), "gateway", "--listen", f"127.0.0.1:{gateway_port}",
                                    "--server", f"https://127.0.0.1:{secure}"], tmp / "gateway.log"))
            admin = ApiClient(f"https://127.0.0.1:{secure}", ca=paths.ca_cert, cert=paths.cert("admin"),
                              key=paths.key("admin"), timeout=60)
            async with admin:
                token = await login_as(admin, home)
                await admin.create(REGISTRY.parse(workload("probe")))
                direct = ApiClient(admin.server, ca=paths.ca_cert, cert=paths.cert("admin"), key=paths.key("admin"))
                through = ApiClient(f"https://127.0.0.1:{gateway_port}", ca=paths.ca_cert,
                                    headers={"Authorization": f"Bearer {token}"})
                async with direct, through:
                    path = direct.path("Workload", NAMESPACE, "probe")
                    for _ in range(100):  # the gateway's session cache and both connection pools warm
                        try:
                            await through.request("GET", path)
                            break
                        except Exception:  # noqa: BLE001 - not listening yet, or the session not cached yet
                            await asyncio.sleep(0.1)
                    get = await latencies(direct, through, path, requests)
                    rates = {"direct": await throughput(direct, path, seconds),
                             "gateway": await throughput(through, path, seconds)}
                    watch = await watch_delays(admin, direct, through, events)
            return {"get": get, "throughput": {**rates, "ratio": rates["gateway"] / rates["direct"]},
                    "watch": watch, "requests": requests, "events": events, "concurrency": CONCURRENCY}
        finally:
            for process in reversed(processes):
                stop(process)
            etcd.stop()


def table(r: dict[str, Any]) -> str:
    g, t, w = r["get"], r["throughput"], r["watch"]
    return "\n".join([
        f"gateway vs direct mTLS (GET one workload, N={r['requests']}; throughput at concurrency {r['concurrency']}; "
        f"watch N={r['events']})",
        f"{'':36}{'direct':>10}{'gateway':>10}{'ratio':>8}{'aim':>10}",
        f"{'GET p50 ms':36}{g['direct']['p50_ms']:>10.2f}{g['gateway']['p50_ms']:>10.2f}{g['ratio_p50']:>8.2f}"
        f"{'≤ 1.3':>10}",
        f"{'GET p99 ms':36}{g['direct']['p99_ms']:>10.2f}{g['gateway']['p99_ms']:>10.2f}",
        f"{'GET requests/s':36}{t['direct']:>10.0f}{t['gateway']:>10.0f}{t['ratio']:>8.2f}{'≥ 0.7':>10}",
        f"{'watch: create → event p50 ms':36}{w['direct']['p50_ms']:>10.2f}{w['gateway']['p50_ms']:>10.2f}"
        f"{w['ratio_p50']:>8.2f}{'≤ 1.3':>10}",
        f"{'watch: create → event p99 ms':36}{w['direct']['p99_ms']:>10.2f}{w['gateway']['p99_ms']:>10.2f}",
    ])


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="100 requests, 2 s, 20 events")
    args = parser.parse_args()
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    if args.quick:
        args.requests, args.seconds, args.events = 100, 2.0, 20
    results = asyncio.run(run(args.requests, args.seconds, args.events))
    print(table(results))
    print(f"wrote {write_results('gateway', results)}")
    return results


if __name__ == "__main__":
    main()
