"""Prometheus metrics: one registry per process, served on every component's ``/metrics``.

Metrics are defined next to the code that moves them; this module owns the registry and
the rendering, so ``persys up`` (every component in one process) exposes them all once.
Components with an HTTP server add ``handler`` as their ``/metrics`` route; a component
without one (the DNS server) starts a ``MetricsServer`` of its own.
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


class MetricsServer:
    """A tiny HTTP listener serving only ``/metrics`` (port 0: any free port, see ``port``)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
