"""Where one launch's time goes: the spans of apply → Running on a ``persys up`` cluster, as a timeline.

Runs a ``persys.up.Cluster`` in this process with an in-memory OpenTelemetry exporter, applies
workloads one at a time (as ``bench/e2e.py`` does) and prints, for the last few, every span that
started between the apply call and the watch event saying Running: the API request, each
controller's reconcile, the agent call, the agent's operation and its Docker calls, in ms from
the apply call. A profiling aid: it writes no JSON and asserts nothing.

Run: .venv/bin/python bench/timeline.py [--workloads 12] [--show 3]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiodocker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e import NAMESPACE, manifest, wait_node_ready  # noqa: E402
from harness import PhaseWatch, remove_containers, running  # noqa: E402

from persys.client import ApiClient  # noqa: E402
from persys.observability import tracing  # noqa: E402
from persys.resources import REGISTRY  # noqa: E402
from persys.store.server import free_port  # noqa: E402
from persys.up import Cluster, UpConfig, prepare_home  # noqa: E402

Row = tuple[float, list[tuple[float, float, str, str]]]


async def launches(count: int, exporter: InMemorySpanExporter) -> list[Row]:
    """(ms to Running, spans as (start ms, end ms, name, key)) for ``count`` applies."""
    with tempfile.TemporaryDirectory(prefix="persys-bench-timeline-") as tmp:
        ports = {name: free_port() for name in ("etcd_port", "etcd_peer_port", "http_port", "api_port",
                                                "controllers_port", "agent_port", "dns_port")}
        config = UpConfig(home=Path(tmp) / "home", node_name=f"timeline-{secrets.token_hex(3)}", **ports)
        paths = prepare_home(config)
        cluster, stop = Cluster(config), asyncio.Event()
        task = asyncio.create_task(cluster.run(stop), name="timeline-cluster")
        client = ApiClient(config.server_url, ca=paths.ca_cert, cert=paths.cert("admin"), key=paths.key("admin"))
        watch = PhaseWatch(client, NAMESPACE)
        try:
            await asyncio.wait_for(cluster.ready.wait(), 60)
            await wait_node_ready(client, config.node_name)
            await watch.start()
            return [await one(client, watch, exporter, f"t{i}") for i in range(count)]
        finally:
            await watch.close()
            await client.close()
            stop.set()
            await asyncio.gather(task, return_exceptions=True)
            async with aiodocker.Docker() as docker:
                await remove_containers(docker, config.node_name)


async def one(client: ApiClient, watch: PhaseWatch, exporter: InMemorySpanExporter, name: str) -> Row:
    running_at = watch.expect(name, running)
    exporter.clear()
    began = time.time_ns()
    await client.apply(REGISTRY.parse(manifest(name)))
    await asyncio.wait_for(running_at, 60)
    total = (time.time_ns() - began) / 1e6
    await asyncio.sleep(0.3)  # let the spans that end after the watch event finish
    spans = [((s.start_time - began) / 1e6, ((s.end_time or s.start_time) - began) / 1e6, s.name,
              str(s.attributes.get("persys.key") or s.attributes.get("docker.object") or "")[-24:])
             for s in exporter.get_finished_spans() if s.start_time is not None and s.start_time >= began]
    return total, sorted(spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=12)
    parser.add_argument("--show", type=int, default=3)
    args = parser.parse_args()
    exporter = InMemorySpanExporter()
    tracing.add_exporter(exporter)
    rows = asyncio.run(launches(args.workloads, exporter))
    for total, spans in rows[-args.show:]:
        print(f"--- apply → Running seen: {total:.1f} ms")
        for start, end, span, key in spans:
            if start <= total:
                print(f"{start:8.1f} {end:8.1f}  {span:44s} {key}")
    print(f"median apply → Running over the last {len(rows) - 2}: {statistics.median(r[0] for r in rows[2:]):.1f} ms")


if __name__ == "__main__":
    main()
