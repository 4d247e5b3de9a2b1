"""Benchmark: what health probes cost the agent, and how fast it reacts to what they find.

Runs an agent in-process (docker runtime) with N busybox httpd containers (host network), each
with a readiness probe (GET /ready) and a liveness probe (GET /healthz; 2 s initial delay, so that
httpd is listening), period 1 s, threshold 1:

- cost: the agent's CPU time per probe run while N containers are probed for ``--idle`` seconds,
  against a minimal prober (one task per probe, a raw aiohttp GET of the same URLs once a second, the
  agent stopped meanwhile: the baseline, in the same process and run); and the latency of one probe
  run (``probes.check``) against a raw GET;
- readiness: ``docker exec`` creates /www/ready → the agent's event stream reports containerReady
  (the bound is one period plus the probe);
- liveness: ``docker exec`` removes /www/healthz → the agent reports the container exited with
  reason Unhealthy (bound: one period, the probe, and the stop with terminationGracePeriodSeconds 0).

Prints a table and writes bench/results-probes.json. Not a test: numbers depend on the machine.

    .venv/bin/python bench/probes.py [--containers 20] [--idle 15] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiodocker
import aiohttp
from harness import latency_summary, write_results

from persys.agentclient import AgentClient
from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.docker import DockerRuntime
from persys.agentd.probes import check
from persys.observability import logging
from persys.resources.probes import Probe
from persys.store.server import free_port

IMAGE = "persys/busybox:local"


def body(uid: str, node: str, port: int) -> dict[str, Any]:
    http = f"mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 127.0.0.1:{port} -h /www"
    probe = {"periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1}
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": f"probe-{uid[:8]}", "namespace": "default", "uid": uid},
            "spec": {"type": "container", "image": IMAGE, "command": ["sh", "-c", http], "network": "host",
                     "nodeName": node,
                     "readinessProbe": {"httpGet": {"path": "/ready", "port": port}, **probe},
                     "livenessProbe": {"httpGet": {"path": "/healthz", "port": port},
                                       "terminationGracePeriodSeconds": 0, "initialDelaySeconds": 2, **probe}}}


class Reports:
    """The agent's event stream, kept as the latest report per uid, with a signal on every change."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self.latest: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Condition()

    async def follow(self) -> None:
        async for report in self.client.events():
            async with self.changed:
                self.latest[str(report.get("uid"))] = report
                self.changed.notify_all()

    async def until(self, uid: str, predicate: Any, timeout: float = 30.0) -> float:
        """perf_counter time at which the report of ``uid`` first satisfies ``predicate``."""
        try:
            async with self.changed:
                await asyncio.wait_for(self.changed.wait_for(lambda: predicate(self.latest.get(uid) or {})), timeout)
        except TimeoutError:
            raise TimeoutError(f"no report of {uid} as expected; last: {self.latest.get(uid)}") from None
        return time.perf_counter()


async def in_container(docker: aiodocker.Docker, uid: str, *command: str) -> None:
    container = docker.containers.container(f"persys-{uid}")
    execution = await container.exec(list(command))
    async with execution.start(detach=False) as stream:
        while await stream.read_out() is not None:
            pass


@contextlib.asynccontextmanager
async def agent_on(node: str, key: bytes, state: str) -> AsyncIterator[Agent]:
    agent = Agent(AgentConfig(name=node, host="127.0.0.1", port=free_port(), secrets={"default": key},
                              runtime_factory=lambda name, hub: DockerRuntime(name, hub, Path(state))))
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


async def cpu_per_probe(agent: Agent, idle: float) -> tuple[float, int]:
    """(CPU seconds per probe run, probe runs) while the agent probes its containers for ``idle`` seconds."""
    from persys.agentd.prober import PROBES

    def runs() -> float:
        return sum(float(PROBES.labels(kind, result)._value.get()) for kind in ("livenessProbe", "readinessProbe")
                   for result in ("success", "failure"))

    before, cpu = runs(), time.process_time()
    await asyncio.sleep(idle)
    done = runs() - before
    return (time.process_time() - cpu) / max(done, 1), int(done)


async def cpu_per_raw_get(urls: list[str], idle: float) -> tuple[float, int]:
    """The baseline: a minimal prober, one task per URL doing a raw aiohttp GET once a second for ``idle``
    seconds; (CPU seconds per GET, GETs)."""
    done = 0

    async def loop(http: aiohttp.ClientSession, url: str) -> None:
        nonlocal done
        while True:
            started = time.monotonic()
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                await response.content.read(1000)
            done += 1
            await asyncio.sleep(max(1.0 - (time.monotonic() - started), 0.0))

    async with aiohttp.ClientSession() as http:
        cpu = time.process_time()
        tasks = [asyncio.create_task(loop(http, url), name="bench-raw-probe") for url in urls]
        await asyncio.sleep(idle)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return (time.process_time() - cpu) / max(done, 1), done


async def raw_baseline(docker: aiodocker.Docker, node: str, ports: list[int], idle: float) -> dict[str, Any]:
    """The minimal prober's CPU per GET, against the same httpd containers run by hand (no agent yet),
    two loops per container as the agent has two probes per container."""
    containers = []
    for port in ports:
        spec = body(str(uuid.uuid4()), node, port)["spec"]
        containers.append(await docker.containers.run({
            "Image": IMAGE, "Entrypoint": spec["command"], "Cmd": [], "HostConfig": {"NetworkMode": "host"},
            "Labels": {"persys.dev/node": f"{node}-raw"}}))
    urls = [f"http://127.0.0.1:{p}/{path}" for p in ports for path in ("healthz", "ready")]  # 200, and 404
    async with aiohttp.ClientSession() as http:
        for url in urls:  # every httpd listening before the clock starts
            for _ in range(50):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url) as response:
                        if response.status in (200, 404):
                            break
                await asyncio.sleep(0.1)
    raw, gets = await cpu_per_raw_get(urls, idle)
    for container in containers:
        await container.delete(force=True)
    return {"raw_gets": gets, "raw_get_ms": raw * 1000}


async def run(n: int, idle: float) -> dict[str, Any]:
    node, key = f"bench-probes-{secrets.token_hex(3)}", secrets.token_hex(32).encode()
    ports = [free_port() for _ in range(n)]
    uids = [str(uuid.uuid4()) for _ in range(n)]
    docker = aiodocker.Docker()
    results: dict[str, Any] = {"containers": n, "period_s": 1, "idle_s": idle}
    try:
        baseline = await raw_baseline(docker, node, ports, idle)
        with TemporaryDirectory() as state:
            async with agent_on(node, key, state) as agent, AgentClient(agent.url, "default", key) as client:
                reports = Reports(client)
                follower = asyncio.create_task(reports.follow(), name="bench-probes-events")
                try:
                    for uid, port in zip(uids, ports, strict=True):
                        op = await client.wait(await client.apply(body(uid, node, port)), 60)
                        assert op["state"] == "succeeded", op
                    for uid in uids:  # running, not ready: /ready is missing
                        await reports.until(uid, lambda r: r.get("state") == "running"
                                            and "404" in str(r.get("probeMessage")))
                    per_probe, probe_runs = await cpu_per_probe(agent, idle)
                    results["cpu"] = {"probe_runs": probe_runs, "agent_ms_per_probe": per_probe * 1000,
                                      **baseline, "ratio": per_probe / (baseline["raw_get_ms"] / 1000)}
                    results["check_latency"] = await check_latency(ports[0])
                    ready, dead = [], []
                    # each change lands at a random point of its container's probe period (containers launched
                    # one after another probe in step: without this, every change would meet the same phase)
                    for uid in uids:
                        await asyncio.sleep(random.random())
                        await in_container(docker, uid, "sh", "-c", "echo ok > /www/ready")
                        started = time.perf_counter()
                        ready.append(await reports.until(uid, lambda r: r.get("containerReady") is True) - started)
                    for uid in uids:
                        await asyncio.sleep(random.random())
                        await in_container(docker, uid, "rm", "/www/healthz")
                        started = time.perf_counter()
                        dead.append(await reports.until(uid, lambda r: r.get("state") == "exited"
                                                        and r.get("reason") == "Unhealthy") - started)
                    results["readiness_reaction"] = latency_summary(ready)
                    results["liveness_reaction"] = latency_summary(dead)
                finally:
                    follower.cancel()
                    await asyncio.gather(follower, return_exceptions=True)
    finally:
        for label in (node, f"{node}-raw"):
            for c in await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={label}"]}):
                await c.delete(force=True)
        await docker.close()
    return results


async def check_latency(port: int, rounds: int = 200) -> dict[str, Any]:
    """One probe run (``probes.check``) against one raw GET of the same URL, interleaved."""
    probe = Probe(kind="livenessProbe", handler="httpGet", port=port, path="/healthz")

    async def no_exec(command: tuple[str, ...], timeout: float) -> tuple[int, str]:
        raise AssertionError("no exec probe here")

    probe_times, raw_times = [], []
    async with aiohttp.ClientSession() as http:
        for _ in range(rounds):
            started = time.perf_counter()
            assert (await check(probe, http, no_exec)).ok
            probe_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                await response.read()
            raw_times.append(time.perf_counter() - started)
    checked, raw = latency_summary(probe_times), latency_summary(raw_times)
    return {"probe": checked, "raw": raw, "ratio_p50": checked["p50_ms"] / raw["p50_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--idle", type=float, default=15.0)
    parser.add_argument("--quick", action="store_true", help="5 containers, 5 s idle")
    args = parser.parse_args()
    n, idle = (5, 5.0) if args.quick else (args.containers, args.idle)
    logging.configure("warning")
    r = asyncio.run(run(n, idle))
    cpu, lat = r["cpu"], r["check_latency"]
    print(f"probes: {n} containers, an HTTP readiness and liveness probe each, period 1 s")
    print(f"{'measure':<44}{'persys':>12}{'baseline':>12}{'ratio':>8}")
    print(f"{'CPU per probe run (ms) vs raw GET loop':<44}{cpu['agent_ms_per_probe']:>12.3f}"
          f"{cpu['raw_get_ms']:>12.3f}{cpu['ratio']:>8.2f}")
    print(f"{'one HTTP probe p50 (ms) vs raw GET':<44}{lat['probe']['p50_ms']:>12.3f}"
          f"{lat['raw']['p50_ms']:>12.3f}{lat['ratio_p50']:>8.2f}")
    for name, label in (("readiness_reaction", "file created → containerReady (ms)"),
                        ("liveness_reaction", "file removed → exited Unhealthy (ms)")):
        row = r[name]
        print(f"{label:<44}{'p50 ' + format(row['p50_ms'], '.0f'):>12}{'max ' + format(row['max_ms'], '.0f'):>12}"
              "  (a probe runs once a period: ≤ 1000 ms + the probe)")
    print(f"probe runs while idle: {cpu['probe_runs']} in {idle:g} s")
    print(f"wrote {write_results('probes', r)}")


if __name__ == "__main__":
    main()
