"""Traces: a reconcile and the agent operation it causes share one trace; the CLI's traceparent
reaches the API; the OTLP exporter exists only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

OTLP traffic goes only to a recorder this test runs on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from persys.controllers import ControllersConfig, build_manager
from persys.store import ObjectStore
from persys.store.server import EtcdServer, free_port
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.hollow import FAST, SECRET, start_hollow_node
from tests.support.workloads import SLEEP, workload

REPO = Path(__file__).resolve().parents[2]


def local_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: no proxies, no inherited OTLP or discovery settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith(("OTEL_", "PERSYS_"))}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONPATH=str(REPO), **extra)
    return env


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """Names of ``span``'s parents, nearest first (as far as they were recorded)."""
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_reconcile_and_agent_operation_share_a_trace(etcd_server: EtcdServer, store: ObjectStore,
                                                           spans: InMemorySpanExporter) -> None:
    node = await start_hollow_node("trace-node", store)
    manager = build_manager(etcd_server.url, listen=None, config=ControllersConfig.from_dict(FAST),
                            hmac_secret=SECRET, identity="trace",
                            controllers=("scheduler", "reconciler", "status", "monitor"))
    task = asyncio.create_task(manager.run(), name="manager-trace")
    try:
        created = await store.create(workload("traced", command=SLEEP))
        uid = created.metadata.uid

        async def applied() -> ReadableSpan | None:
            return next((s for s in spans.get_finished_spans()
                         if s.name == "agent.apply" and (s.attributes or {}).get("persys.uid") == uid), None)

        operation = await eventually(applied, what="the agent's apply span")
    finally:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await node.stop()
    trace = {s.context.span_id: s for s in spans.get_finished_spans()
             if s.context.trace_id == operation.context.trace_id}
    chain = ancestors(operation, trace)
    # operation ← the agent's request span ← (an agent-client span, if any) ← the reconcile that sent it
    assert chain[0] == "agent POST /v1/workloads/{uid}" and "reconciler.reconcile" in chain[1:3], chain
    reconcile = next(s for s in trace.values() if s.name == "reconciler.reconcile")
    assert (reconcile.attributes or {}).get("persys.key") == "Workload/default/traced"
    assert (operation.attributes or {}).get("persys.node") == "trace-node"


class OtlpRecorder:
    """An OTLP/HTTP trace receiver on 127.0.0.1 that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str, str]] = []  # (name, trace id, span id, parent span id)
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def receive(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append((span.name, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self.receive)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpRecorder]:
    recorder = OtlpRecorder()
    await recorder.start()
    yield recorder
    await recorder.stop()


async def run_cli(home: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``persys --home HOME ARGS…`` as a child process; (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "persys.cli.main", "--home", str(home), *args, env=env, cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_cli_traceparent_reaches_the_api_and_the_otlp_exporter(
        api: RunningApi, spans: InMemorySpanExporter, otlp: OtlpRecorder) -> None:
    env = local_env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp.port}")
    code, out, err = await run_cli(api.home, "get", "workloads", env=env)
    assert code == 0, out + err
    cli_spans = [s for s in otlp.spans if s[0] == "persys get"]
    assert len(cli_spans) == 1, otlp.spans
    _, trace_id, span_id, _ = cli_spans[0]

    async def served() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]

    server_spans = await eventually(served, what="the API's span in the CLI's trace")
    assert [s.kind for s in server_spans] == [SpanKind.SERVER]
    assert server_spans[0].name == "GET /apis/persys.dev/v1/namespaces/{namespace}/{plural}"
    assert server_spans[0].parent is not None and format(server_spans[0].parent.span_id, "016x") == span_id


@pytest.mark.parametrize("endpoint", ["", "http://127.0.0.1:4318"])
async def test_otlp_exporter_only_when_the_endpoint_is_set(endpoint: str) -> None:
    code = ("from persys.observability import tracing; tracing.setup('probe'); "
            "print(','.join(type(e).__name__ for e in tracing.exporters()))")
    env = local_env(**({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint} if endpoint else {}))
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=env, cwd=str(REPO),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == ("OTLPSpanExporter" if endpoint else ""), err.decode()
