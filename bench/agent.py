"""Benchmark: apply → running through the agent vs raw aiodocker create+start of the same container.

Runs an agent in-process (docker runtime, 127.0.0.1, network host), then N times each,
interleaved: (a) AgentClient.apply + wait until the operation succeeded (the container is
running), (b) aiodocker create + start of the same container config. Prints p50/p99 and the
ratio, and writes bench/results-agent.json. Not a test: numbers depend on the machine.

    .venv/bin/python bench/agent.py [N]
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiodocker

from persys.agentclient import AgentClient
from persys.agentd.containers import container_config
from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.docker import DockerRuntime
from persys.agentd.runtime import WorkloadSpec
from persys.observability import logging
from persys.store.server import free_port

IMAGE = "persys/busybox:local"
RESULTS = Path(__file__).with_name("results-agent.json")


def body(uid: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": f"bench-{uid[:8]}", "namespace": "default", "uid": uid},
            "spec": {"type": "container", "image": IMAGE, "command": ["sleep", "3600"], "network": "host",
                     "nodeName": node}}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run(n: int) -> dict[str, Any]:
    node = f"bench-{secrets.token_hex(3)}"
    key = secrets.token_hex(32).encode()
    docker = aiodocker.Docker()
    agent_times: list[float] = []
    raw_times: list[float] = []
    with TemporaryDirectory() as state:
        agent = Agent(AgentConfig(name=node, host="127.0.0.1", port=free_port(), secrets={"default": key},
                                  runtime_factory=lambda name, hub: DockerRuntime(name, hub, Path(state))))
        await agent.start()
        client = AgentClient(agent.url, "default", key)
        try:
            for i in range(n + 2):  # two warm-up rounds, not counted
                uid = str(uuid.uuid4())
                started = time.perf_counter()
                op = await client.wait(await client.apply(body(uid, node)), 60)
                elapsed = time.perf_counter() - started
                assert op["state"] == "succeeded", op
                # same config, labelled for another node so that the agent never lists it
                config = container_config(WorkloadSpec.from_body(uid, body(uid, node)), f"{node}-raw")
                started = time.perf_counter()
                container = await docker.containers.create(config, name=f"persys-raw-{uid}")
                await container.start()
                raw = time.perf_counter() - started
                if i >= 2:
                    agent_times.append(elapsed)
                    raw_times.append(raw)
        finally:
            await client.close()
            await agent.stop()
            for label in (node, f"{node}-raw"):
                for c in await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={label}"]}):
                    await c.delete(force=True)
            await docker.close()
    summary = {name: {"p50_ms": percentile(values, 50) * 1000, "p99_ms": percentile(values, 99) * 1000,
                      "mean_ms": statistics.mean(values) * 1000}
               for name, values in (("agent", agent_times), ("raw", raw_times))}
    return {"n": n, "image": IMAGE, **summary,
            "ratio_p50": summary["agent"]["p50_ms"] / summary["raw"]["p50_ms"],
            "ratio_p99": summary["agent"]["p99_ms"] / summary["raw"]["p99_ms"],
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    logging.configure("warning")
    result = asyncio.run(run(n))
    print(f"apply → running, N={n} each (ms)")
    print(f"{'path':<28}{'p50':>10}{'p99':>10}{'mean':>10}")
    for name, label in (("agent", "agent apply + wait"), ("raw", "raw aiodocker create+start")):
        row = result[name]
        print(f"{label:<28}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}{row['mean_ms']:>10.1f}")
    print(f"{'ratio agent/raw':<28}{result['ratio_p50']:>10.2f}{result['ratio_p99']:>10.2f}")
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
