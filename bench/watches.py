"""Watch benchmark: the API server's memory with many idle client watches, and the time for one
change to reach all of them, served by the watch cache against watches of their own on etcd. After
the watches close, a second round of as many watches shows whether their memory was given back to
the server for reuse (the RSS itself seldom shrinks: the allocator keeps freed pages).

Each mode gets a fresh ``persys server`` process (Python keeps memory it once used, so one process
cannot measure both). In the cache mode the watches start at "now" and share the kind's one etcd
watch; in the etcd mode they start at a revision older than the cache holds, so each is answered
by an etcd watch of its own, as every watch was before the cache. The raw baseline is the same
number of idle keep-alive TLS connections to the same server. Each watch is a connection of its
own (HTTP/1.1), and a listener takes up to 2,048 (``persys.httpedge.ListenerLimits``).

Run: .venv/bin/python bench/watches.py [--watches 1000] [--quick]
     (prints a table, writes bench/results-watches.json)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp  # noqa: E402
from api import start_api, workload  # noqa: E402
from harness import cancel_on_sigterm, percentile, rss_mb, stop, write_results  # noqa: E402

from persys.security import pki  # noqa: E402
from persys.security.tls import client_context  # noqa: E402
from persys.store import Etcd  # noqa: E402
from persys.store.server import EtcdServer  # noqa: E402

PATH = "/apis/persys.dev/v1/namespaces/bench/workloads"


async def settle(pid: int) -> float:
    """The server's RSS once it has stopped moving (after connections come or go)."""
    await asyncio.sleep(1.0)
    return rss_mb(pid)


async def open_watch(session: aiohttp.ClientSession, url: str, after: str | None) -> aiohttp.ClientResponse:
    query = "?watch=true" + (f"&resourceVersion={after}" if after is not None else "")
    resp = await session.get(url + PATH + query)
    assert resp.status == 200, (resp.status, await resp.text())
    return resp


async def first_line(resp: aiohttp.ClientResponse, name: str, started: list[float]) -> float | str:
    """Seconds from the write to this watch's line about ``name`` (BOOKMARKs and replays skipped), or the
    message of the ERROR line that ended the watch first."""
    while True:
        data = await resp.content.readline()
        if not data:
            return "the stream ended"
        event = json.loads(data)
        if event["type"] == "ERROR":
            return str(event["object"].get("message"))
        if event["object"].get("metadata", {}).get("name") == name:
            return time.perf_counter() - started[0]


async def measure(home: pki.HomePaths, etcd_url: str, watches: int, mode: str) -> dict[str, Any]:
    process, _, url = start_api(home.home, etcd_url)
    ssl = client_context(home.ca_cert, home.cert("admin"), home.key("admin"))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl, limit=0),
                                         timeout=aiohttp.ClientTimeout(total=None)) as session:
            async with session.post(url + PATH, json=workload("seed", "bench")) as resp:
                body = await resp.json()
                assert resp.status == 201, body
                seed = body["metadata"]["resourceVersion"]
            idle = await settle(process.pid)
            # warm the kind's cache (its first watch starts it at "now", after the seed)
            (await open_watch(session, url, None)).close()
            after = str(int(seed) - 1) if mode == "etcd" else None  # before the cache's start: etcd's history
            gate = asyncio.Semaphore(50)

            async def one() -> aiohttp.ClientResponse:
                async with gate:
                    return await open_watch(session, url, after)

            responses = await asyncio.gather(*(one() for _ in range(watches)))
            if mode == "etcd":  # each replays the seed first
                for resp in responses:
                    json.loads(await resp.content.readline())
            loaded = await settle(process.pid)
            started = [0.0]
            readers = [asyncio.create_task(first_line(resp, "probe", started)) for resp in responses]
            await asyncio.sleep(0.5)
            started[0] = time.perf_counter()
            async with session.post(url + PATH, json=workload("probe", "bench")) as resp:
                assert resp.status == 201, resp.status
            outcomes = await asyncio.gather(*readers)
            delays = [o for o in outcomes if isinstance(o, float)]
            errors = sorted({o for o in outcomes if isinstance(o, str)})
            for resp in responses:
                resp.close()
            closed = await settle(process.pid)
            for resp in await asyncio.gather(*(one() for _ in range(watches))):  # a second round reuses it
                resp.close()
            again = await settle(process.pid)
            return {"rss_idle_mb": idle, "rss_watching_mb": loaded, "rss_after_close_mb": closed,
                    "rss_after_second_round_mb": again,
                    "kib_per_watch": (loaded - idle) * 1024 / watches,
                    "fanout_p50_ms": percentile(delays, 50) * 1000, "fanout_last_ms": max(delays) * 1000,
                    "watches_ended_by_errors": watches - len(delays), "errors": errors[:3]}
    finally:
        stop(process)


async def baseline(home: pki.HomePaths, etcd_url: str, connections: int) -> dict[str, Any]:
    """The same number of idle keep-alive TLS connections (each made one GET of /readyz)."""
    process, _, url = start_api(home.home, etcd_url)
    ssl = client_context(home.ca_cert, home.cert("admin"), home.key("admin"))
    try:
        idle = await settle(process.pid)
        sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) for _ in range(connections)]
        gate = asyncio.Semaphore(50)

        async def one(session: aiohttp.ClientSession) -> None:
            async with gate, session.get(url + "/readyz") as resp:
                await resp.read()

        await asyncio.gather(*(one(s) for s in sessions))
        loaded = await settle(process.pid)
        for session in sessions:
            await session.close()
        return {"rss_idle_mb": idle, "rss_watching_mb": loaded, "kib_per_watch": (loaded - idle) * 1024 / connections}
    finally:
        stop(process)


def table(results: dict[str, Any]) -> str:
    n = results["watches"]
    lines = [f"{n} idle watches on one API server     {'idle MiB':>9}{'loaded MiB':>11}{'KiB each':>9}"
             f"{'closed MiB':>11}{'2nd round':>10}{'fan-out p50':>12}{'last':>8}"]
    for mode, label in (("cache", "watch cache (one etcd watch)"), ("etcd", "a watch of its own on etcd"),
                        ("raw", "raw: idle keep-alive TLS conns")):
        r = results[mode]
        closed = (f"{r['rss_after_close_mb']:>11.0f}{r['rss_after_second_round_mb']:>10.0f}"
                  if "rss_after_close_mb" in r else f"{'':>21}")
        fanout = f"{r['fanout_p50_ms']:>10.0f}ms{r['fanout_last_ms']:>6.0f}ms" if "fanout_p50_ms" in r else ""
        lines.append(f"{label:38}{r['rss_idle_mb']:>9.0f}{r['rss_watching_mb']:>11.0f}{r['kib_per_watch']:>9.1f}"
                     f"{closed}{fanout}")
    for mode in ("cache", "etcd"):
        if results[mode]["watches_ended_by_errors"]:
            lines.append(f"{mode}: {results[mode]['watches_ended_by_errors']} of {n} watches ended with an ERROR "
                         f"line before the change reached them: {'; '.join(results[mode]['errors'])}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 watches")
    args = parser.parse_args()
    cancel_on_sigterm()
    watches = 200 if args.quick else args.watches
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * watches + 1024)), hard))
    results: dict[str, Any] = {"watches": watches}
    with tempfile.TemporaryDirectory(prefix="persys-bench-") as tmp:
        home = pki.init(Path(tmp) / "home")
        etcd_server = EtcdServer(Path(tmp) / "etcd")
        await etcd_server.start()
        try:
            for mode in ("cache", "etcd"):
                results[mode] = await measure(home, etcd_server.url, watches, mode)
                etcd = Etcd(etcd_server.url)  # the next mode starts from an empty keyspace
                try:
                    await etcd.delete_prefix("/persys/")
                finally:
                    await etcd.close()
            results["raw"] = await baseline(home, etcd_server.url, watches)
        finally:
            with contextlib.suppress(Exception):
                etcd_server.stop()
    print(table(results))
    print(f"wrote {write_results('watches', results)}")


if __name__ == "__main__":
    asyncio.run(main())
