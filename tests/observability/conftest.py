"""Observability tests: the API fixtures of tests.support.cluster, one in-memory span exporter, no leftovers."""

from __future__ import annotations

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
