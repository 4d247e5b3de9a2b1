"""Push-to-deploy benchmark: a signed GitHub push to the gateway until the new commit runs.

A ``persys.up.Cluster`` with its gateway runs in this process (real etcd, dockerd, docker-compose).
A compose app built from a local git repository (``FROM persys/busybox:local``, the page copied in)
is deployed; then, N times, a commit is made, a signed ``push`` is posted to ``/webhooks/github``,
and the time is taken until the gateway answers and until the workload reports that commit
Running. The raw baseline, in the same run and on the same commit: ``docker-compose down``
of the previous version, ``git clone``, ``docker-compose build`` and ``up -d`` of the same app by
hand, the work a redeploy cannot avoid. Both build the same Dockerfile, so Docker's layer cache serves them alike.

Run: .venv/bin/python bench/pushdeploy.py [--pushes 5]  (writes bench/results-pushdeploy.json)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the same app as the tests

from e2e import wait_node_ready  # noqa: E402
from harness import cancel_on_sigterm, latency_summary, remove_containers, write_results  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.gateway.webhooks import signature  # noqa: E402
from persys.observability import logging  # noqa: E402
from persys.security.tls import client_context  # noqa: E402
from persys.store.server import free_port  # noqa: E402
from persys.up import Cluster, UpConfig, check_docker, prepare_home  # noqa: E402
from tests.support.gitrepo import commit, compose_app_repo  # noqa: E402

SECRET = "bench-secret"
RAW_PROJECT = f"bench-raw-{secrets.token_hex(3)}"


def raw_redeploy(repo: Path, work: Path, previous: Path | None) -> tuple[float, Path]:
    """Seconds to take the previous version down and clone, build and start the tip, by hand; the checkout."""
    checkout = work / f"raw-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    if previous is not None:
        subprocess.run([*_compose(previous), "down", "-t", "10"], check=True, capture_output=True, timeout=300)
    subprocess.run(["git", "clone", "--quiet", repo.as_uri(), str(checkout)], check=True, timeout=120)
    subprocess.run([*_compose(checkout), "build"], check=True, capture_output=True, timeout=300)
    subprocess.run([*_compose(checkout), "up", "-d", "--no-build"], check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started, checkout


def _compose(checkout: Path) -> list[str]:
    return ["docker-compose", "--no-ansi", "-p", RAW_PROJECT, "-f", str(checkout / "docker-compose.yml")]


def remove_images(prefix: str) -> None:
    """The images docker-compose built for the app's project."""
    listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True,
                            text=True, timeout=60).stdout.split()
    for image in (i for i in listed if i.startswith(prefix)):
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, timeout=60)


async def push(session: aiohttp.ClientSession, url: str, repo: Path, after: str) -> float:
    payload = json.dumps({"ref": "refs/heads/main", "after": after, "repository": {
        "full_name": "bench/app", "clone_url": repo.as_uri(), "default_branch": "main"}}).encode()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), "Content-Type": "application/json",
               "X-Hub-Signature-256": signature(SECRET, payload)}
    started = time.perf_counter()
    async with session.post(f"{url}/webhooks/github", data=payload, headers=headers) as resp:
        body = await resp.json()
        if resp.status != 200 or not body.get("updated"):
            raise RuntimeError(f"the push was not acted on: {resp.status} {body}")
    return time.perf_counter() - started


async def running_at(client: ApiClient, revision: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app = await client.get("Workload", "app")
        if app.status.get("deployedRevision") == revision and app.status.get("phase") == "Running":
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{revision} was not Running within {timeout:.0f}s")


async def run(pushes: int) -> dict[str, Any]:
    cancel_on_sigterm()
    await check_docker()
    with tempfile.TemporaryDirectory(prefix="persys-bench-push-") as tmp_name:
        tmp = Path(tmp_name)
        port, repo = free_port(), tmp / "app"
        compose_app_repo(repo, port)
        first = commit(repo, "page 0")
        config = UpConfig(home=tmp / "home", etcd_port=free_port(), etcd_peer_port=free_port(),
                          http_port=free_port(), api_port=free_port(), controllers_port=free_port(),
                          agent_port=free_port(), dns_port=free_port(), gateway_port=free_port(),
                          node_name=f"bench-{secrets.token_hex(3)}")
        paths = prepare_home(config)
        cluster, stop = Cluster(config), asyncio.Event()
        task = asyncio.create_task(cluster.run(stop), name="bench-cluster")
        client = ApiClient(config.server_url, ca=paths.ca_cert, cert=paths.cert("admin"), key=paths.key("admin"))
        uid = ""
        answers: list[float] = []
        to_running: list[float] = []
        raw: list[float] = []
        previous: Path | None = None
        try:
            await asyncio.wait_for(cluster.ready.wait(), 60)
            await wait_node_ready(client, config.node_name)
            await client.apply_raw({"apiVersion": "persys.dev/v1", "kind": "Secret", "metadata": {
                "name": "webhook-bench", "namespace": "persys-gateway", "labels": {"persys.dev/webhook": "github"}},
                "data": {"repository": "bench/app", "secret": SECRET, "namespaces": "default"}})
            created, _ = await client.apply_raw({"apiVersion": "persys.dev/v1", "kind": "Workload",
                                                 "metadata": {"name": "app"},
                                                 "spec": {"type": "compose", "compose": {"repo": repo.as_uri()}}})
            uid = created.metadata.uid
            await running_at(client, first)
            ssl = client_context(paths.ca_cert)
            url = f"https://127.0.0.1:{config.gateway_port}"
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as session:
                for i in range(1, pushes + 1):
                    revision = commit(repo, f"page {i}")
                    started = time.perf_counter()
                    answers.append(await push(session, url, repo, revision))
                    await running_at(client, revision)
                    to_running.append(time.perf_counter() - started)
                    seconds, previous = await asyncio.to_thread(raw_redeploy, repo, tmp, previous)
                    raw.append(seconds)
        finally:
            if previous is not None:
                await asyncio.to_thread(subprocess.run, [*_compose(previous), "down", "--rmi", "local", "-t", "0"],
                                        capture_output=True, timeout=300)
            await client.close()
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 60)
            cluster.etcd_server.stop()
            docker = aiodocker.Docker()
            await remove_containers(docker, config.node_name)
            await docker.close()
            if uid:
                await asyncio.to_thread(remove_images, f"persys-{uid}_")
        persys, baseline = latency_summary(to_running), latency_summary(raw)
        return {"pushes": pushes, "webhook_answer": latency_summary(answers), "push_to_running": persys,
                "raw_clone_build_up": baseline, "ratio_p50": persys["p50_ms"] / baseline["p50_ms"]}


def table(r: dict[str, Any]) -> str:
    a, p, b = r["webhook_answer"], r["push_to_running"], r["raw_clone_build_up"]
    return "\n".join([
        f"push to deploy: {r['pushes']} signed pushes of a compose app built from a local repository",
        f"{'':48}{'p50 ms':>10}{'p99 ms':>10}",
        f"{'gateway answers the webhook':48}{a['p50_ms']:>10.1f}{a['p99_ms']:>10.1f}   (aim < 100 ms)",
        f"{'push → new commit Running (deployedRevision)':48}{p['p50_ms']:>10.0f}{p['p99_ms']:>10.0f}",
        f"{'raw: compose down + git clone + build + up -d':48}{b['p50_ms']:>10.0f}{b['p99_ms']:>10.0f}",
        f"{'ratio persys / raw (p50)':48}{r['ratio_p50']:>10.2f}",
    ])


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 pushes")
    args = parser.parse_args()
    logging.configure(os.environ.get("PERSYS_LOG_LEVEL", "warning"))
    results = asyncio.run(run(2 if args.quick else args.pushes))
    print(table(results))
    print(f"wrote {write_results('pushdeploy', results)}")
    return results


if __name__ == "__main__":
    main()
