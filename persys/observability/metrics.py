"""Prometheus metrics: one registry per process, served on every component's ``/metrics``.

Metrics are defined next to the code that moves them; this module owns the registry and
the rendering, so ``persys up`` (every component in one process) exposes them all once.
Components with an HTTP server add ``handler`` as their ``/metrics`` route; a component
without one (the DNS server) serves it with ``persys.runtime.supervisor.StatusListener``.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

METRICS_REGISTRY: CollectorRegistry = REGISTRY


def render() -> tuple[bytes, str]:
    """The exposition text of every metric in this process and its content type."""
    return generate_latest(METRICS_REGISTRY), CONTENT_TYPE_LATEST


async def handler(request: web.Request) -> web.Response:
    """An aiohttp ``GET /metrics`` handler."""
    body, content_type = render()
    return web.Response(body=body, headers={"Content-Type": content_type})
