"""Every CSR gets a span and a metric: the joining node's trace reaches the API and the signer's ``csr.sign``
span, and ``persys_csr_total{outcome}`` / ``persys_csr_issue_seconds`` count what was decided."""

from __future__ import annotations

import aiohttp
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from persys.observability import tracing
from persys.security import csr
from persys.security.bootstrap import CSR_PATH
from persys.security.tls import client_context
from persys.store import ObjectStore
from persys.store.server import EtcdServer
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.joining import issued, signer, token_object


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_a_csr_is_traced_from_the_node_to_the_signer_and_counted(
        api: RunningApi, etcd_server: EtcdServer, store: ObjectStore, spans: InMemorySpanExporter) -> None:
    token, secret = token_object()
    await store.create(token)
    issued_before = _sample("persys_csr_total", {"outcome": "issued"})
    denied_before = _sample("persys_csr_total", {"outcome": "denied"})
    timed_before = _sample("persys_csr_issue_seconds_count")
    spans.clear()
    async with signer(etcd_server.url, api.pki.home):
        with tracing.tracer("tests").start_as_current_span("node joins") as parent:
            for name, role in (("traced", "agents"), ("traced-admin", "admins")):
                pem = csr.new_request(csr.new_key(), "traced", f"persys:{role}", ["traced"]).decode()
                body = {"kind": "CertificateSigningRequest", "metadata": {"name": name},
                        "spec": {"request": pem, "role": role}}
                headers = tracing.inject({"Authorization": f"Bearer {secret}"})
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                        ssl=client_context(api.pki.ca_cert))) as http, \
                        http.post(api.secure_url + CSR_PATH, json=body, headers=dict(headers)) as resp:
                    assert resp.status == 201, await resp.text()
        await eventually(lambda: issued(store, "traced"), what="the certificate")
        await eventually(lambda: issued(store, "traced-admin"), what="the denial")
    signs = {s.attributes["persys.csr"]: s for s in spans.get_finished_spans() if s.name == "csr.sign"
             and s.attributes is not None}
    assert set(signs) == {"traced", "traced-admin"}
    trace_id = parent.get_span_context().trace_id
    assert all(s.context is not None and s.context.trace_id == trace_id for s in signs.values())
    assert signs["traced"].attributes["persys.csr.outcome"] == "issued"
    assert signs["traced-admin"].attributes["persys.csr.outcome"] == "denied"
    assert signs["traced-admin"].attributes["persys.csr.reason"] == "RoleNotAllowed"
    assert _sample("persys_csr_total", {"outcome": "issued"}) == issued_before + 1
    assert _sample("persys_csr_total", {"outcome": "denied"}) == denied_before + 1
    assert _sample("persys_csr_issue_seconds_count") == timed_before + 1
