"""OpenTelemetry: a tracer provider per process, W3C ``traceparent`` in and out of HTTP headers.

Spans go to an OTLP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, nowhere otherwise;
tests install an in-memory exporter with ``add_exporter``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

_provider: TracerProvider | None = None
_exporters: list[SpanExporter] = []
_tracers: dict[str, trace.Tracer] = {}


def setup(service_name: str = "persys") -> TracerProvider:
    """Install the process's tracer provider (once); OTLP export when the endpoint env var is set."""
    global _provider
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
            _exporters.append(exporter)
            _provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(_provider)
    return _provider


def add_exporter(exporter: SpanExporter) -> None:
    """Send every finished span to ``exporter`` as well (tests use an in-memory one)."""
    setup().add_span_processor(SimpleSpanProcessor(exporter))
    _exporters.append(exporter)


def exporters() -> list[SpanExporter]:
    """The exporters spans go to in this process (empty: spans are made but go nowhere)."""
    return list(_exporters)


def flush(timeout_millis: int = 5000) -> bool:
    """Export every finished span now (a short-lived process calls this before it exits)."""
    return _provider.force_flush(timeout_millis) if _provider is not None else True


def tracer(name: str) -> trace.Tracer:
    """The tracer of instrumentation scope ``name`` (persys.api, persys.agent, …), made once: the SDK's
    ``get_tracer`` builds a new one (and its scope) on every call, on every request's hot path."""
    found = _tracers.get(name)
    if found is None:
        setup()
        found = _tracers[name] = trace.get_tracer(name)
    return found


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add ``traceparent`` for the current span to outgoing ``headers``."""
    propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, str]) -> context.Context:
    """The trace context carried by incoming ``headers`` (empty when there is none)."""
    return propagate.extract(dict(headers))


def attach(ctx: context.Context) -> Any:
    """Make ``ctx`` current; pass the returned token to ``opentelemetry.context.detach``."""
    return context.attach(ctx)
