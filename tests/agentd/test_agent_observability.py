"""Traces cross from the client into the agent (W3C traceparent); operations are counted in /metrics."""

from __future__ import annotations

import aiohttp
from agent_support import new_uid
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from persys.observability import tracing
from tests.support.workloads import agent_workload


async def test_traceparent_and_metrics(start_agent, client_for) -> None:  # type: ignore[no-untyped-def]
    exporter = InMemorySpanExporter()
    tracing.add_exporter(exporter)
    agent = await start_agent()
    client = client_for(agent)
    uid = new_uid()
    with tracing.tracer("test").start_as_current_span("controller reconcile") as parent:
        trace_id = parent.get_span_context().trace_id
        await client.wait(await client.apply(agent_workload(uid, agent.config.name)), 10)
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    names = {s.name for s in spans}
    assert "agent POST /v1/workloads/{uid}" in names and "agent.apply" in names, names
    async with aiohttp.ClientSession() as session, session.get(agent.url + "/metrics") as resp:
        text = await resp.text()
    assert resp.status == 200
    assert 'persys_agent_operations_total{action="apply",result="succeeded"}' in text
    assert "persys_agent_operation_duration_seconds_bucket" in text
