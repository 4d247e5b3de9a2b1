"""SkyDNS keys and values as the CoreDNS etcd plugin reads them, and the records of a workload."""

from __future__ import annotations

import json

import pytest

from persys.dns.records import SkyRecord, key_to_name, name_to_key, node_ip, owner_of, workload_records
from persys.resources import REGISTRY, Resource


def workload(name: str = "web-1", service: dict[str, object] | None = None,
             ports: list[dict[str, object]] | None = None) -> Resource:
    spec: dict[str, object] = {"image": "persys/busybox:local",
                               "ports": ports if ports is not None else
                               [{"name": "http", "containerPort": 8080, "hostPort": 18080}]}
    if service is not None:
        spec["service"] = service
    return REGISTRY.parse({"apiVersion": "persys.dev/v1", "kind": "Workload",
                           "metadata": {"name": name}, "spec": spec})


def test_keys_reverse_labels() -> None:
    assert name_to_key("web.default.persys.local") == "/skydns/local/persys/default/web"
    assert name_to_key("Web.Default.persys.local.") == "/skydns/local/persys/default/web"
    assert key_to_name("/skydns/local/persys/default/web/x1") == "x1.web.default.persys.local"
    with pytest.raises(ValueError):
        key_to_name("/persys/registry/nodes/n1")


def test_value_is_coredns_service_json() -> None:
    record = SkyRecord("/skydns/local/persys/default/web/_tcp/_http/web-1", "127.0.0.1", port=18080,
                       targetstrip=3)
    assert json.loads(record.encode()) == {"host": "127.0.0.1", "port": 18080, "priority": 10, "weight": 10,
                                           "ttl": 30, "targetstrip": 3}
    assert SkyRecord.decode(record.key, record.encode()) == record
    assert record.target == "web.default.persys.local"
    assert json.loads(SkyRecord("/skydns/local/persys/a/x", "127.0.0.1").encode()).keys() == {
        "host", "priority", "weight", "ttl"}  # zero fields left out, as Go's omitempty does
    for bad in (b"nope", b"[1]", b'{"host": 5}', b'{"host": "h", "port": "x"}'):
        with pytest.raises(ValueError):
            SkyRecord.decode("/skydns/x", bad)


def test_workload_records_a_and_srv() -> None:
    a, srv = workload_records(workload(service={"name": "web", "port": "http"}), "127.0.0.1", "persys.local")
    assert a == SkyRecord("/skydns/local/persys/default/web/web-1", "127.0.0.1")
    assert srv == SkyRecord("/skydns/local/persys/default/web/_tcp/_http/web-1", "127.0.0.1", port=18080,
                            targetstrip=3)
    by_number = workload_records(workload(service={"name": "web", "port": 8080}), "10.0.0.1", "persys.local")
    assert by_number[1].port == 18080
    unnamed = workload(service={"name": "api", "port": 9000},
                       ports=[{"containerPort": 9000, "protocol": "udp"}])
    assert workload_records(unnamed, "10.0.0.1", "persys.local")[1].key == \
        "/skydns/local/persys/default/api/_udp/_9000/web-1"
    assert workload_records(workload(), "127.0.0.1", "persys.local") == []  # no service, no records
    only_a = workload_records(workload(service={"name": "web"}, ports=[]), "127.0.0.1", "persys.local")
    assert [r.port for r in only_a] == [0]


def test_node_ip_and_owner() -> None:
    node = REGISTRY.parse({"apiVersion": "persys.dev/v1", "kind": "Node", "metadata": {"name": "n1"},
                           "spec": {"address": "127.0.0.1:7100"}})
    assert node_ip(node) == "127.0.0.1"
    node.spec["address"] = "[::1]:7100"
    assert node_ip(node) == "::1"
    node.spec["address"] = "http://10.1.2.3:7100"
    assert node_ip(node) == "10.1.2.3"
    assert owner_of("/skydns/local/persys/default/web/web-1", "persys.local") == ("default", "web-1")
    assert owner_of("/skydns/local/persys/default/web/_tcp/_http/web-1", "persys.local") == ("default", "web-1")
    assert owner_of("/skydns/local/persys/_tcp/_persys-api/api-1", "persys.local") is None
    assert owner_of("/skydns/local/other/default/web/web-1", "persys.local") is None
