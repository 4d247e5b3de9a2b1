"""Probes on a Workload and on the services of a compose workload: what the API refuses, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from persys.errors import Invalid
from persys.resources import REGISTRY
from persys.resources.probes import Probe, parse_probes, probes_of

IMAGE = "persys/busybox:local"
PORTS = [{"name": "http", "containerPort": 18080}]
COMPOSE = {"repo": "https://example.com/app.git"}


def refused(spec: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        REGISTRY.parse({"kind": "Workload", "metadata": {"name": "web"}, "spec": spec})
    return {c.field: c.message for c in caught.value.causes}


BAD = [
    # (name, spec, field, message fragment)
    ("no handler", {"image": IMAGE, "livenessProbe": {"periodSeconds": 5}},
     "spec.livenessProbe", "needs exactly one handler, httpGet, tcpSocket or exec; has none"),
    ("two handlers", {"image": IMAGE, "readinessProbe": {"httpGet": {"port": 80}, "tcpSocket": {"port": 80}}},
     "spec.readinessProbe", "has httpGet and tcpSocket"),
    ("port above range", {"image": IMAGE, "livenessProbe": {"httpGet": {"port": 65536}}},
     "spec.livenessProbe.httpGet.port", "65536 is out of range 1-65535"),
    ("port zero", {"image": IMAGE, "startupProbe": {"tcpSocket": {"port": 0}}},
     "spec.startupProbe.tcpSocket.port", "0 is out of range 1-65535"),
    ("unknown port name", {"image": IMAGE, "ports": PORTS, "readinessProbe": {"tcpSocket": {"port": "web"}}},
     "spec.readinessProbe.tcpSocket.port", "'web' names no port in spec.ports (named ports: http)"),
    ("port of another type", {"image": IMAGE, "livenessProbe": {"tcpSocket": {"port": 80.5}}},
     "spec.livenessProbe.tcpSocket.port", "must be a port number or a port name, not float"),
    ("empty command", {"image": IMAGE, "livenessProbe": {"exec": {"command": []}}},
     "spec.livenessProbe.exec.command", "must not be empty"),
    ("relative path", {"image": IMAGE, "livenessProbe": {"httpGet": {"port": 80, "path": "healthz"}}},
     "spec.livenessProbe.httpGet.path", "must start with /"),
    ("liveness success threshold", {"image": IMAGE, "livenessProbe": {"exec": {"command": ["true"]},
                                                                      "successThreshold": 2}},
     "spec.livenessProbe.successThreshold", "must be 1 for a livenessProbe"),
    ("zero period", {"image": IMAGE, "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 0}},
     "spec.readinessProbe.periodSeconds", "must be 1-86400"),
    ("unknown field", {"image": IMAGE, "livenessProbe": {"grpc": {"port": 80}}},
     "spec.livenessProbe.grpc", "unknown field"),
    ("grace on readiness", {"image": IMAGE, "readinessProbe": {"exec": {"command": ["true"]},
                                                               "terminationGracePeriodSeconds": 1}},
     "spec.readinessProbe.terminationGracePeriodSeconds", "only for a liveness or startup probe"),
    ("compose probe at the top", {"type": "compose", "compose": COMPOSE, "livenessProbe": {"tcpSocket": {"port": 1}}},
     "spec.livenessProbe", "a compose workload has probes per service"),
    ("compose service without handler", {"type": "compose", "compose": {
        **COMPOSE, "services": {"web": {"readinessProbe": {}}}}},
     "spec.compose.services.web.readinessProbe", "needs exactly one handler"),
    ("compose service port out of range", {"type": "compose", "compose": {
        **COMPOSE, "services": {"web": {"livenessProbe": {"httpGet": {"port": 99999}}}}}},
     "spec.compose.services.web.livenessProbe.httpGet.port", "99999 is out of range"),
    ("compose service name", {"type": "compose", "compose": {**COMPOSE, "services": {"we b": {}}}},
     "spec.compose.services.we b", "must be a compose service name"),
]


@pytest.mark.parametrize(("spec", "field", "message"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_probe_is_refused_naming_the_field(spec: dict[str, Any], field: str, message: str) -> None:
    causes = refused(spec)
    assert field in causes, causes
    assert message in causes[field]


def test_defaults_are_kubernetes_and_named_ports_resolve() -> None:
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": "web"}, "spec": {
        "image": IMAGE, "ports": PORTS, "readinessProbe": {"httpGet": {"port": "http", "path": "/ok"}}}})
    probe = obj.spec["readinessProbe"]
    assert {k: probe[k] for k in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold",
                                  "successThreshold")} == {"initialDelaySeconds": 0, "periodSeconds": 10,
                                                           "timeoutSeconds": 1, "failureThreshold": 3,
                                                           "successThreshold": 1}
    parsed = parse_probes(probes_of(obj.spec)[""])["readinessProbe"]
    assert parsed == Probe(kind="readinessProbe", handler="httpGet", port=18080, path="/ok")
    assert parsed.describe() == "HTTP GET http://127.0.0.1:18080/ok"


def test_without_probes_the_spec_is_unchanged() -> None:
    """No probe fields appear (defaults would change every stored workload's spec hash)."""
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": "web"}, "spec": {"image": IMAGE}})
    assert not any(key.endswith("Probe") for key in obj.spec)
    assert probes_of(obj.spec) == {}


def test_compose_services_keep_their_own_probes() -> None:
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": "app"}, "spec": {
        "type": "compose", "compose": {**COMPOSE, "services": {
            "web": {"livenessProbe": {"tcpSocket": {"port": 8080}}}, "db": {}}}}})
    probes = probes_of(obj.spec)
    assert list(probes) == ["web"]
    assert parse_probes(probes["web"])["livenessProbe"].port == 8080
