"""API benchmark: creates/s through the API (concurrency 1 and 32) next to raw etcd puts of the
same JSON (and ObjectStore.create in this process, the CAS write the API itself makes), and the
latency of listing 10,000 workloads. Starts its own etcd and ``persys server`` (a separate process).

Run: .venv/bin/python bench/api.py  (prints a table, writes bench/results-api.json)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from persys.client import ApiClient
from persys.resources import REGISTRY
from persys.security import pki
from persys.security.tls import client_context
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer, free_port

PERSYS = str(Path(sys.executable).parent / "persys")
LIST_SIZE = 10_000


def workload(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
            "spec": {"image": "persys/busybox:local", "command": ["httpd", "-f", "-p", "18080"],
                     "ports": [{"name": "http", "containerPort": 18080}], "resources": {"cpu": "10m", "memory": "8Mi"}}}


async def create(client: ApiClient, name: str, namespace: str) -> None:
    """POST the manifest as written (the client does no validation: the bench measures the server)."""
    await client.request("POST", client.path("workloads", namespace), body=workload(name, namespace))


async def rate(count: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Operations per second running ``op(0..count-1)`` with ``concurrency`` workers."""
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


def start_api(home: Path, etcd_url: str) -> tuple[subprocess.Popen[bytes], str, str]:
    plain, secure = free_port(), free_port()
    env = {**os.environ, "PERSYS_LOG_LEVEL": "warning"}
    process = subprocess.Popen([PERSYS, "--home", str(home), "server", "--etcd", etcd_url,
                                "--listen", f"127.0.0.1:{plain}", "--secure-listen", f"127.0.0.1:{secure}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{plain}/readyz", timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    return process, f"http://127.0.0.1:{plain}", f"https://127.0.0.1:{secure}"


async def list_latency(home: pki.HomePaths, url: str, namespace: str) -> tuple[float, float, int]:
    """Median seconds of a raw HTTP list (request + body) and of ApiClient.list (plus decoding)."""
    ssl = client_context(home.ca_cert, home.cert("admin"), home.key("admin"))
    path = f"{url}/apis/persys.dev/v1/namespaces/{namespace}/workloads"
    raw: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as session:
        for _ in range(5):
            started = time.perf_counter()
            async with session.get(path) as resp:
                body = await resp.read()
            raw.append(time.perf_counter() - started)
    count = len(json.loads(body)["items"])
    decoded: list[float] = []
    async with ApiClient(url, ca=home.ca_cert, cert=home.cert("admin"), key=home.key("admin")) as client:
        for _ in range(3):
            started = time.perf_counter()
            await client.list("workloads", namespace)
            decoded.append(time.perf_counter() - started)
    return statistics.median(raw), statistics.median(decoded), count


async def measure(home: pki.HomePaths, etcd: Etcd, url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    payload = json.dumps(workload("x", "raw")).encode()
    store = ObjectStore(etcd, REGISTRY)
    async with ApiClient(url, ca=home.ca_cert, cert=home.cert("admin"), key=home.key("admin")) as client:
        for concurrency, count in ((1, 1000), (32, 5000)):
            ns = f"c{concurrency}"
            results[f"etcd_puts_per_s_c{concurrency}"] = await rate(
                count, concurrency, lambda i, ns=ns: etcd.put(f"/bench/raw/{ns}/w{i}", payload))
            results[f"store_creates_per_s_c{concurrency}"] = await rate(
                count, concurrency, lambda i, ns=ns: store.create(REGISTRY.parse(workload(f"w{i}", f"store-{ns}"))))
            results[f"api_creates_per_s_c{concurrency}"] = await rate(
                count, concurrency, lambda i, ns=ns: create(client, f"w{i}", ns))
        await rate(LIST_SIZE, 32, lambda i: create(client, f"w{i}", "list"))
    raw, decoded, count = await list_latency(home, url, "list")
    results.update(list_items=count, list_seconds_http=raw, list_seconds_client=decoded)
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{'':28}{'API':>8}{'raw etcd put':>14}{'API/put':>9}{'ObjectStore.create':>20}"]
    for c in (1, 32):
        api, raw, store = (results[f"{what}_per_s_c{c}"] for what in ("api_creates", "etcd_puts", "store_creates"))
        lines.append(f"{f'creates/s, concurrency {c}':28}{api:>8.0f}{raw:>14.0f}{api / raw:>9.2f}{store:>20.0f}")
    lines.append(f"list {results['list_items']} workloads: {results['list_seconds_http'] * 1000:.0f} ms over HTTP, "
                 f"{results['list_seconds_client'] * 1000:.0f} ms with ApiClient decoding")
    return "\n".join(lines)


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="persys-bench-") as tmp:
        home = pki.init(Path(tmp) / "home")
        etcd_server = EtcdServer(Path(tmp) / "etcd")
        await etcd_server.start()
        etcd = Etcd(etcd_server.url)
        process, _, url = start_api(home.home, etcd_server.url)
        try:
            results = await measure(home, etcd, url)
        finally:
            process.terminate()
            process.wait(10)
            await etcd.close()
            etcd_server.stop()
    print(table(results))
    out = Path(__file__).with_name("results-api.json")
    out.write_text(json.dumps({"cpus": os.cpu_count(), **results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main())
