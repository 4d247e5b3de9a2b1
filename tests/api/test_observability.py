"""/openapi.json matches the router (extra routes included), metrics per route, a span per request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from persys.api.app import ROUTES
from persys.observability import tracing
from persys.resources import REGISTRY
from persys.security.paths import HomePaths
from persys.store.server import EtcdServer
from tests.support.cluster import ApiThread, RunningApi, raw_request

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    tracing.add_exporter(_EXPORTER)
    return _EXPORTER


async def stats(request: web.Request) -> web.Response:
    """Reconciliation statistics (a stand-in for another component's route)."""
    return web.json_response({"passes": 0})


def add_stats(app: web.Application) -> None:
    app.router.add_get("/reconciliation/stats", stats)


@pytest.fixture
def api_with_extra(etcd: object, etcd_server: EtcdServer, pki_home: HomePaths,
                   tmp_path: Path) -> Iterator[RunningApi]:
    thread = ApiThread(etcd_server.url, pki_home.home, extra_routes=[add_stats]).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home")
    finally:
        thread.stop()


async def test_openapi_lists_every_route(api_with_extra: RunningApi) -> None:
    status, body, _ = await raw_request(api_with_extra, "GET", "/openapi.json", plain=True)
    assert status == 200
    paths = json.loads(body)["paths"]
    for method, template, _ in ROUTES:
        expanded = [template.replace("{plural}", kind.plural) for kind in REGISTRY.all()] \
            if "{plural}" in template else [template]
        assert any(method.lower() in paths.get(p, {}) for p in expanded), (method, template)
    ns = "/apis/persys.dev/v1/namespaces/{namespace}"
    assert set(paths[f"{ns}/workloads/{{name}}"]) == {"get", "put", "patch", "delete"}
    assert "put" in paths[f"{ns}/workloads/{{name}}/status"]
    assert "put" in paths["/apis/persys.dev/v1/nodes/{name}/status"]
    assert f"{ns}/nodes" not in paths and f"{ns}/secrets/{{name}}/status" not in paths
    assert set(paths["/apis/persys.dev/v1/workloads"]) == {"get"}
    assert paths["/reconciliation/stats"]["get"]["summary"].startswith("Reconciliation statistics")
    status, body, _ = await raw_request(api_with_extra, "GET", "/reconciliation/stats")
    assert status == 200 and json.loads(body) == {"passes": 0}
    status, _, _ = await raw_request(api_with_extra, "GET", "/reconciliation/stats", identity="node-n1")
    assert status == 403


async def test_metrics_and_server_spans(api: RunningApi, spans: InMemorySpanExporter) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01", "X-Request-Id": "req-42"}
    status, _, response_headers = await raw_request(api, "GET", "/apis/persys.dev/v1/namespaces/default/workloads",
                                                    headers=headers)
    assert status == 200 and response_headers["X-Request-Id"] == "req-42"
    route = "/apis/persys.dev/v1/namespaces/{namespace}/{plural}"
    mine = [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    assert [s.name for s in mine] == [f"GET {route}"]
    assert mine[0].parent is not None and format(mine[0].parent.span_id, "016x") == "b7ad6b7169203331"
    _, body, _ = await raw_request(api, "GET", "/metrics", plain=True)
    text = body.decode()
    assert f'persys_api_requests_total{{code="200",method="GET",route="{route}"}}' in text
    assert f'persys_api_request_duration_seconds_count{{method="GET",route="{route}"}}' in text
