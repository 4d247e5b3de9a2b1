"""Dashboard benchmark: the workloads page with 10,000 workloads, against one raw API page, in the same run.

Starts etcd, ``persys server`` and ``persys gateway`` as separate processes on free 127.0.0.1 ports,
stores N workloads that look like running ones (``listing.populate``), makes a session for
``github:bench`` as a GitHub login would (bound ``view`` cluster-wide), then measures, p50 of
``--rounds`` each:

- raw: one API page, ``GET …/workloads?limit=50`` straight to the API over mTLS, body read;
- the same page through the gateway's proxy (bearer token);
- the dashboard's ``/ui/workloads`` (all namespaces, first page: 50 rows rendered), its second page
  (from the first page's Next link), and a search for a name none has, beside the same search asked of
  the API directly (``?nameContains``, which scans every key);
- with Debian's chromium (if installed) through Playwright: navigation until the first row is shown;
- then with ``--churn`` workloads/s changing (status writes through the API): the page again, and for
  a workload on an open page, the delay from its write to its row arriving on the page's live stream,
  next to the delay to a raw API watch of all workloads opened at the same time.

Aim (issue 15): the first page in under 1 s with 10,000 workloads; responsive while 100/s change.

Run: .venv/bin/python bench/dashboard.py [--workloads 10000] [--rounds 20] [--churn 100]
     (writes bench/results-dashboard.json)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # this process forks children while grpc runs

import aiohttp  # noqa: E402
from gateway import login_as  # noqa: E402
from harness import PERSYS, cancel_on_sigterm, latency_summary, spawn, stop, wait_http, write_results  # noqa: E402
from listing import NAMESPACES, populate  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.security import pki  # noqa: E402
from persys.security.tls import client_context  # noqa: E402
from persys.store import Etcd  # noqa: E402
from persys.store.server import EtcdServer, free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
PAGE = 50


async def timed(rounds: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return latency_summary(times)


async def fetch(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> str:
    async with session.get(url, **kwargs) as response:
        body = await response.text()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {body[:300]}")
        return body


async def browser_load(gateway: str, token: str, rounds: int) -> dict[str, float] | None:
    """Navigation to /ui/workloads until its first row is visible, in chromium; None without chromium."""
    if not HAVE_CHROMIUM:
        return None
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(ignore_https_errors=True)
            await context.add_cookies([{"name": "persys_access", "value": token, "url": gateway}])
            page = await context.new_page()
            await page.goto(gateway + "/ui/workloads")  # warm: the script and style are cached after this

            async def load() -> None:
                await page.goto(gateway + "/ui/workloads")
                await page.locator("#rows tr").first.wait_for()

            return await timed(rounds, load)
        finally:
            await browser.close()


async def churn(admin: ApiClient, rate: int, names: list[tuple[str, str]], stop_at: asyncio.Event) -> int:
    """Status writes to ``rate`` workloads a second (round robin over ``names``) until ``stop_at``; how many."""
    done, tick = 0, 1.0 / rate
    started = time.perf_counter()
    while not stop_at.is_set():
        namespace, name = names[done % len(names)]
        await admin.update_status("Workload", name, {"phase": "Running", "restarts": done}, namespace=namespace)
        done += 1
        delay = started + done * tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    return done


async def live_delays(admin: ApiClient, session: aiohttp.ClientSession, gateway: str, page_html: str,
                      samples: int) -> dict[str, Any]:
    """For ``samples`` writes to a workload on the open first page: write → its row on the page's stream, and
    write → the same change on a raw API watch of all workloads."""
    live = re.search(r'data-live="(/ui/live/list/[^"]+)"', page_html)
    keys = re.findall(r'<tr data-key="([^"]+)"', page_html)
    assert live is not None and keys, "the page has no live stream or no rows"
    namespace, name = keys[len(keys) // 2].split("/")
    _, revision = await admin.list("Workload", namespace, page=1)
    seen: dict[str, asyncio.Future[float]] = {}
    wanted = {"restarts": -1}  # each sample writes a new restart count, shown in the row's RESTARTS cell

    def arrived(stream: str) -> None:
        future = seen.get(stream)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    async def page_stream() -> None:
        url = gateway + live.group(1).replace("&amp;", "&")
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
            async for line in response.content:
                if line.startswith(b"data: ") and f'"RESTARTS\\">{wanted["restarts"]}<' in line.decode():
                    arrived("page")

    async def raw_watch() -> None:
        async for item in admin.watch("Workload", None, resource_version=revision):
            if item.object is not None and item.object.metadata.name == name \
                    and item.object.status.get("restarts") == wanted["restarts"]:
                arrived("api")

    tasks = [asyncio.create_task(page_stream()), asyncio.create_task(raw_watch())]
    delays: dict[str, list[float]] = {"page": [], "api": []}
    try:
        await asyncio.sleep(1.0)  # both streams open
        for i in range(samples):
            wanted["restarts"] = 1_000_000 + i
            loop = asyncio.get_running_loop()
            seen.update(page=loop.create_future(), api=loop.create_future())
            started = time.perf_counter()
            await admin.update_status("Workload", name, {"phase": "Running", "restarts": wanted["restarts"]},
                                      namespace=namespace)
            for stream in delays:
                delays[stream].append(await asyncio.wait_for(seen[stream], 30) - started)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {stream: latency_summary(values) for stream, values in delays.items()}


async def measure(admin: ApiClient, home: pki.HomePaths, gateway: str, token: str, rounds: int,
                  churn_rate: int) -> dict[str, Any]:
    raw_ssl = client_context(home.ca_cert, home.cert("admin"), home.key("admin"))
    page_path = f"/apis/persys.dev/v1/workloads?limit={PAGE}"
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=raw_ssl)) as raw, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(home.ca_cert)),
                                  cookies={"persys_access": token}) as browser:
        results["raw_api_page"] = await timed(rounds, lambda: fetch(raw, admin.server + page_path))
        results["gateway_proxy_page"] = await timed(
            rounds, lambda: fetch(browser, gateway + page_path, headers={"Authorization": f"Bearer {token}"}))
        first = await fetch(browser, gateway + "/ui/workloads")
        rows = first.count("<tr data-key=")
        following = re.search(r'href="([^"]+)" rel="next"', first)
        assert rows == PAGE and following is not None, f"expected a full first page, got {rows} rows"
        results["dashboard_first_page"] = await timed(rounds, lambda: fetch(browser, gateway + "/ui/workloads"))
        second = gateway + following.group(1).replace("&amp;", "&")
        results["dashboard_second_page"] = await timed(rounds, lambda: fetch(browser, second))
        results["raw_api_search"] = await timed(  # no name matches: the API scans every key
            rounds, lambda: fetch(raw, admin.server + page_path + "&nameContains=no-such-name"))
        results["dashboard_search_all"] = await timed(
            rounds, lambda: fetch(browser, gateway + "/ui/workloads?search=no-such-name"))
        results["browser_first_row"] = await browser_load(gateway, token, max(5, rounds // 2))

        stop_churn = asyncio.Event()
        names = [(NAMESPACES[1], f"w{i}") for i in range(1, 2000, 2)]  # list-b: never on the first page
        churning = asyncio.create_task(churn(admin, churn_rate, names, stop_churn))
        try:
            await asyncio.sleep(1.0)
            results["churn_dashboard_first_page"] = await timed(
                rounds, lambda: fetch(browser, gateway + "/ui/workloads"))
            fresh = await fetch(browser, gateway + "/ui/workloads")
            results["churn_live"] = await live_delays(admin, browser, gateway, fresh, rounds)
        finally:
            stop_churn.set()
            written = await churning
        results["churn_rate"] = churn_rate
        results["churn_writes"] = written
    return results


async def run(count: int, rounds: int, churn_rate: int) -> dict[str, Any]:
    cancel_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="persys-bench-dashboard-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        plain, secure, gateway_port = free_port(), free_port(), free_port()
        paths = pki.init(home, server=f"https://127.0.0.1:{secure}")
        pki.issue(paths, "gateway", "gateway")
        etcd_server = EtcdServer(tmp / "etcd")
        await etcd_server.start()
        processes = []
        etcd = Etcd(etcd_server.url, timeout=30)
        try:
            processes.append(spawn([PERSYS, "--home", str(home), "server", "--etcd", etcd_server.url, "--listen",
                                    f"127.0.0.1:{plain}", "--secure-listen", f"127.0.0.1:{secure}", "--zone", ""],
                                   tmp / "api.log"))
            wait_http(f"http://127.0.0.1:{plain}/readyz", 60, processes[0])
            processes.append(spawn([PERSYS, "--home", str(home), "gateway", "--listen", f"127.0.0.1:{gateway_port}",
                                    "--server", f"https://127.0.0.1:{secure}"], tmp / "gateway.log"))
            populated = await populate(etcd, count)
            gateway = f"https://127.0.0.1:{gateway_port}"
            async with ApiClient(f"https://127.0.0.1:{secure}", ca=paths.ca_cert, cert=paths.cert("admin"),
                                 key=paths.key("admin"), timeout=60) as admin:
                token = await login_as(admin, home)  # bench is bound admin by login_as
                async with aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(ssl=client_context(paths.ca_cert))) as probe:
                    for _ in range(100):  # the gateway listening and its session cache showing the session
                        with contextlib.suppress(aiohttp.ClientError, RuntimeError):
                            await fetch(probe, gateway + "/ui/workloads?namespace=empty",
                                        cookies={"persys_access": token})
                            break
                        await asyncio.sleep(0.2)
                results = await measure(admin, paths, gateway, token, rounds, churn_rate)
            return {"workloads": count, "rounds": rounds, "populate_s": round(populated, 2), **results}
        finally:
            for process in reversed(processes):
                stop(process)
            await etcd.close()
            etcd_server.stop()


def table(r: dict[str, Any]) -> str:
    raw = r["raw_api_page"]["p50_ms"]
    rows = [("raw API page (limit=50, mTLS, body read)", r["raw_api_page"]),
            ("the same page through the gateway's proxy", r["gateway_proxy_page"]),
            ("dashboard /ui/workloads, first page (HTML)", r["dashboard_first_page"]),
            ("dashboard, second page (Next link)", r["dashboard_second_page"]),
            (f"raw API search (nameContains) among {r['workloads']}, no match", r["raw_api_search"]),
            (f"dashboard search among {r['workloads']}, no match", r["dashboard_search_all"]),
            ("chromium: navigation → first row shown", r["browser_first_row"]),
            (f"first page while {r['churn_rate']} workloads/s change", r["churn_dashboard_first_page"]),
            ("  live: write → row on the page's stream", r["churn_live"]["page"]),
            ("  live: write → raw API watch (baseline)", r["churn_live"]["api"])]
    lines = [f"dashboard with {r['workloads']} workloads (p50 of {r['rounds']} unless noted)",
             f"{'':52}{'p50 ms':>9}{'p99 ms':>9}{'× raw':>8}"]
    for label, summary in rows:
        if summary is None:
            lines.append(f"{label:52}{'(no chromium)':>26}")
            continue
        lines.append(f"{label:52}{summary['p50_ms']:>9.1f}{summary['p99_ms']:>9.1f}{summary['p50_ms'] / raw:>8.1f}")
    lines.append(f"churn: {r['churn_writes']} status writes at {r['churn_rate']}/s")
    return "\n".join(lines)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--churn", type=int, default=100, help="workloads changed per second in the last part")
    parser.add_argument("--quick", action="store_true", help="2,000 workloads, 8 rounds")
    args = parser.parse_args()
    if args.quick:
        args.workloads, args.rounds = 2000, 8
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    results = asyncio.run(asyncio.wait_for(run(args.workloads, args.rounds, args.churn), 900))
    print(table(results))
    print(f"wrote {write_results('dashboard', results)}")
    return results


if __name__ == "__main__":
    main()
