"""Join benchmark: bootstrap token → node Ready, and CSR signing throughput, each against a baseline.

Starts etcd, ``persys server`` and ``persys controllers`` (whose csr-signer holds the CA key) as separate
processes on free 127.0.0.1 ports. Then, in the same run:

- token → Ready: ``persys agent --join … --token … --ca-hash …`` (simulated runtime, a home and state
  directory of its own) from process start to its Node Ready on an API watch; interleaved with the
  baseline, the same agent started with a certificate issued beforehand by hand (``persys pki issue``,
  copied files), so the difference is what joining costs (CA check, key, CSR, signing, node config);
- signing throughput: N CSRs posted with one token at concurrency 16 until every one has its certificate
  (watch), against the same CA signing the same requests in-process with nothing around it.

Run: .venv/bin/python bench/join.py [--joins 10] [--csrs 300] [--quick]   (writes bench/results-join.json)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import PERSYS, cancel_on_sigterm, latency_summary, spawn, stop, wait_http, write_results  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.resources import ObjectMeta, Resource  # noqa: E402
from persys.runtime.clock import to_iso  # noqa: E402
from persys.security import csr, pki  # noqa: E402
from persys.security.bootstrap import CSR_PATH, ca_hash, new_token, secret_hash  # noqa: E402
from persys.store.server import EtcdServer, free_port  # noqa: E402

CONCURRENCY = 16


class NodeWatch:
    """The first time each Node is seen Ready, from one API watch."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.ready: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _, version = await self.client.list("Node", None)
        self.task = asyncio.create_task(self._follow(version), name="bench-node-watch")

    async def _follow(self, version: str) -> None:
        async for item in self.client.watch("Node", None, resource_version=version):
            node = item.object
            if node is None or node.metadata.name in self.ready:
                continue
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in node.status.get("conditions", [])):
                self.ready[node.metadata.name] = time.perf_counter()
                self.changed.set()

    async def wait(self, name: str, timeout: float = 60.0) -> float:
        async with asyncio.timeout(timeout):
            while name not in self.ready:
                self.changed.clear()
                await self.changed.wait()
        return self.ready[name]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def make_token(admin: ApiClient, ttl: float = 3600) -> str:
    token_id, secret = new_token()
    await admin.create(Resource(kind="BootstrapToken", metadata=ObjectMeta(name=token_id), spec={
        "secretHash": secret_hash(secret), "expires": to_iso(time.time() + ttl)}))
    return f"{token_id}.{secret}"


async def one_join(admin: ApiClient, watch: NodeWatch, server: str, pinned: str, tmp: Path, name: str) -> float:
    token = await make_token(admin)
    home, port = tmp / name, free_port()
    home.mkdir()
    started = time.perf_counter()
    process = spawn([PERSYS, "--home", str(home), "agent", "--runtime", "simulated", "--name", name, "--listen",
                     f"127.0.0.1:{port}", "--join", server, "--token", token, "--ca-hash", pinned,
                     "--state-dir", str(home / "state")], tmp / f"{name}.log")
    try:
        return await watch.wait(name) - started
    finally:
        await asyncio.to_thread(stop, process)


async def one_by_hand(watch: NodeWatch, server: str, cluster: Path, tmp: Path, name: str) -> float:
    home, port = tmp / name, free_port()
    home.mkdir()
    cert, key = pki.issue(cluster, f"node-{name}", "agents", sans=["127.0.0.1"])  # what an admin does first
    for source in (cert, key, cluster / "pki" / "ca.crt", cluster / "pki" / "agent-hmac.secret"):
        shutil.copy(source, home / source.name)
    cluster_id = (cluster / "pki" / "cluster-id").read_text().strip()
    started = time.perf_counter()
    process = spawn([PERSYS, "--home", str(home), "agent", "--runtime", "simulated", "--name", name, "--listen",
                     f"127.0.0.1:{port}", "--server", server, "--cert", str(home / cert.name), "--key",
                     str(home / key.name), "--ca", str(home / "ca.crt"), "--hmac-secret",
                     str(home / "agent-hmac.secret"), "--cluster-id", cluster_id, "--state-dir", str(home / "state")],
                    tmp / f"{name}.log")
    try:
        return await watch.wait(name) - started
    finally:
        await asyncio.to_thread(stop, process)


async def signing(admin: ApiClient, server: str, ca: Path, ca_key: Path, count: int) -> dict[str, Any]:
    """CSRs/s through the API and the csr-signer, and the raw signs/s of the same CA on the same requests."""
    token = await make_token(admin)
    requests = [csr.new_request(csr.new_key(), f"s{i}", "persys:agents", [f"s{i}", "127.0.0.1"]).decode()
                for i in range(count)]
    _, version = await admin.list("CertificateSigningRequest", None)
    done: set[str] = set()
    all_done = asyncio.Event()

    async def follow() -> None:
        async for item in admin.watch("CertificateSigningRequest", None, resource_version=version):
            if item.object is not None and item.object.status.get("certificate"):
                done.add(item.object.metadata.name)
                if len(done) >= count:
                    all_done.set()

    watcher = asyncio.create_task(follow(), name="bench-csr-watch")
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    async with ApiClient(server, ca=ca, headers={"Authorization": f"Bearer {token}"}) as node:
        async def post() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await node.request("POST", CSR_PATH, body={"kind": "CertificateSigningRequest",
                                                           "metadata": {"name": f"s{i}"},
                                                           "spec": {"request": requests[i], "role": "agents"}})
        try:
            started = time.perf_counter()
            await asyncio.gather(*(post() for _ in range(CONCURRENCY)))
            posted = time.perf_counter() - started
            await asyncio.wait_for(all_done.wait(), 300)
            through = time.perf_counter() - started
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    raw_started = time.perf_counter()
    for i, request in enumerate(requests):
        csr.sign(request, ca, ca_key, common_name=f"s{i}", organization="persys:agents", sans=[f"s{i}", "127.0.0.1"],
                 lifetime=csr.datetime.timedelta(days=30))
    raw = time.perf_counter() - raw_started
    return {"csrs": count, "concurrency": CONCURRENCY, "per_second": count / through, "posted_per_second":
            count / posted, "raw_per_second": count / raw, "ratio": (count / through) / (count / raw)}


async def run(joins: int, csrs: int) -> dict[str, Any]:
    cancel_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="persys-bench-join-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        plain, secure, metrics = free_port(), free_port(), free_port()
        server = f"https://127.0.0.1:{secure}"
        paths = pki.init(home, server=server)
        etcd = EtcdServer(tmp / "etcd")
        await etcd.start()
        processes = []
        try:
            processes.append(spawn([PERSYS, "--home", str(home), "server", "--etcd", etcd.url, "--listen",
                                    f"127.0.0.1:{plain}", "--secure-listen", f"127.0.0.1:{secure}", "--zone", ""],
                                   tmp / "api.log"))
            wait_http(f"http://127.0.0.1:{plain}/readyz", 60, processes[0])
            processes.append(spawn([PERSYS, "--home", str(home), "controllers", "--etcd", etcd.url, "--listen",
                                    f"127.0.0.1:{metrics}", "--zone", ""], tmp / "controllers.log"))
            wait_http(f"http://127.0.0.1:{metrics}/healthz", 60, processes[1])
            pinned = ca_hash(paths.ca_cert.read_bytes())
            async with ApiClient(server, ca=paths.ca_cert, cert=paths.cert("admin"), key=paths.key("admin"),
                                 timeout=60) as admin:
                watch = NodeWatch(admin)
                await watch.start()
                times: dict[str, list[float]] = {"join": [], "by_hand": []}
                try:
                    await one_join(admin, watch, server, pinned, tmp, "warm-join")  # imports cached, leader elected
                    for i in range(joins):
                        times["join"].append(await one_join(admin, watch, server, pinned, tmp, f"joined-{i}"))
                        times["by_hand"].append(await one_by_hand(watch, server, home, tmp, f"by-hand-{i}"))
                finally:
                    await watch.close()
                ready = {name: latency_summary(values) for name, values in times.items()}
                ready["ratio_p50"] = ready["join"]["p50_ms"] / ready["by_hand"]["p50_ms"]
                ready["overhead_p50_ms"] = ready["join"]["p50_ms"] - ready["by_hand"]["p50_ms"]
                signed = await signing(admin, server, paths.ca_cert, paths.ca_key, csrs)
            return {"token_to_ready": ready, "signing": signed, "joins": joins}
        finally:
            for process in reversed(processes):
                stop(process)
            etcd.stop()


def table(r: dict[str, Any]) -> str:
    ready, signed = r["token_to_ready"], r["signing"]
    return "\n".join([
        f"join: process start → Node Ready (N={r['joins']}, simulated runtime), and CSR signing "
        f"({signed['csrs']} CSRs at concurrency {signed['concurrency']})",
        f"{'':40}{'join':>12}{'by hand':>12}{'ratio':>8}",
        f"{'token → Ready p50 ms':40}{ready['join']['p50_ms']:>12.0f}{ready['by_hand']['p50_ms']:>12.0f}"
        f"{ready['ratio_p50']:>8.2f}",
        f"{'token → Ready p99 ms':40}{ready['join']['p99_ms']:>12.0f}{ready['by_hand']['p99_ms']:>12.0f}",
        f"{'join overhead p50 ms':40}{ready['overhead_p50_ms']:>12.0f}",
        f"{'':40}{'API+signer':>12}{'raw sign':>12}{'ratio':>8}",
        f"{'CSRs signed / s':40}{signed['per_second']:>12.0f}{signed['raw_per_second']:>12.0f}{signed['ratio']:>8.2f}",
        f"{'CSRs posted / s':40}{signed['posted_per_second']:>12.0f}",
    ])


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--csrs", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="3 joins, 60 CSRs")
    args = parser.parse_args()
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    if args.quick:
        args.joins, args.csrs = 3, 60
    results = asyncio.run(run(args.joins, args.csrs))
    print(table(results))
    print(f"wrote {write_results('join', results)}")
    return results


if __name__ == "__main__":
    main()
