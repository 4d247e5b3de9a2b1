"""Observability tests: the API fixtures of tests.support.cluster, one in-memory span exporter, no leftovers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from persys.observability import tracing
from tests.support.cluster import api, pki_home  # noqa: F401

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span finished in this process from now on (installed once: exporters cannot be removed)."""
    if _EXPORTER not in tracing.exporters():
        tracing.add_exporter(_EXPORTER)
    return _EXPORTER


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running (after every other fixture is torn down)."""
    yield
    for _ in range(40):
        leftover = {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}
        if not leftover:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"tasks left behind: {sorted(t.get_name() for t in leftover)}")
