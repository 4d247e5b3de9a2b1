"""The DNS registrar under a real manager and etcd: records follow workloads as they run, stop, move, go."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from dns_support import ask, rcode

from persys.controllers.dnsregistrar import DnsRegistrar
from persys.dns import DnsServer, SkyRecord, name_to_key, zone_prefix
from persys.errors import NotLeader
from persys.resources import REGISTRY, Resource
from persys.runtime import Manager
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer
from tests.support.eventually import eventually

ZONE = "persys.local"
A_KEY = "/skydns/local/persys/default/web/web-1"
SRV_KEY = "/skydns/local/persys/default/web/_tcp/_http/web-1"


def node(name: str, address: str) -> Resource:
    return REGISTRY.parse({"apiVersion": "persys.dev/v1", "kind": "Node", "metadata": {"name": name},
                           "spec": {"address": address}})


def web(name: str = "web-1", node_name: str = "n1") -> Resource:
    return REGISTRY.parse({"apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": {"name": name},
                           "spec": {"image": "persys/busybox:local", "nodeName": node_name,
                                    "ports": [{"name": "http", "containerPort": 18080, "hostPort": 18080}],
                                    "service": {"name": "web", "port": "http"}}})


@pytest.fixture
async def registrar(etcd_server: EtcdServer, etcd: Etcd) -> AsyncIterator[Manager]:
    manager = Manager(Etcd(etcd_server.url), component="dns-test", lease_ttl=2, listen=None, owns_etcd=True)
    manager.add(DnsRegistrar(ZONE))
    task = asyncio.create_task(manager.run(), name="dns-registrar-manager")
    try:
        await eventually(lambda: manager.is_leader)
        yield manager
    finally:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("dns-registrar")]


async def records(etcd: Etcd) -> dict[str, SkyRecord]:
    kvs, _ = await etcd.range(zone_prefix(ZONE))
    return {kv.key: SkyRecord.decode(kv.key, kv.value) for kv in kvs}


async def set_phase(store: ObjectStore, phase: str, node_name: str = "n1", name: str = "web-1",
                    ready: bool | None = None) -> None:
    """Status as the status controller writes it: Ready follows Running unless ``ready`` says otherwise."""
    ready = phase == "Running" if ready is None else ready
    condition = {"type": "Ready", "status": "True" if ready else "False", "reason": "test", "message": ""}
    await store.update_status("Workload", "default", name, {"phase": phase, "nodeName": node_name,
                                                            "conditions": [condition]})


async def test_records_exist_only_while_ready(store: ObjectStore, etcd: Etcd, registrar: Manager) -> None:
    await store.create(node("n1", "127.0.0.1:7100"))
    await store.create(web())
    await set_phase(store, "Running", ready=False)  # running, but its readiness probe fails
    await asyncio.sleep(0.3)
    assert await records(etcd) == {}
    await set_phase(store, "Running", ready=True)
    await eventually(lambda: _keys(etcd, {A_KEY, SRV_KEY}))
    await set_phase(store, "Running", ready=False)
    await eventually(lambda: _keys(etcd, set()))


async def test_records_follow_the_workload(store: ObjectStore, etcd: Etcd, registrar: Manager,
                                           dns_server: DnsServer) -> None:
    await store.create(node("n1", "127.0.0.1:7100"))
    await store.create(node("n2", "127.0.0.2:7100"))
    await store.create(web())
    await set_phase(store, "Starting")
    await asyncio.sleep(0.3)  # not Running yet: nothing is registered
    assert await records(etcd) == {}

    await set_phase(store, "Running")
    await eventually(lambda: _keys(etcd, {A_KEY, SRV_KEY}))
    found = await records(etcd)
    assert found[A_KEY].host == "127.0.0.1"
    assert (found[SRV_KEY].port, found[SRV_KEY].target) == (18080, "web.default.persys.local")

    async def answers(name: str, rdtype: str) -> list[str]:
        response = await ask(dns_server, name, rdtype)
        return [rd.to_text() for rrset in response.answer for rd in rrset]

    await eventually(lambda: _equals(answers("web.default.persys.local", "A"), ["127.0.0.1"]))
    assert await answers("_http._tcp.web.default.persys.local", "SRV") == ["10 10 18080 web.default.persys.local."]

    await set_phase(store, "Stopped")
    await eventually(lambda: _keys(etcd, set()))

    async def nxdomain() -> bool:
        return rcode(await ask(dns_server, "web.default.persys.local", "A")) == "NXDOMAIN"

    await eventually(nxdomain)

    await set_phase(store, "Running", node_name="n2")  # it came back on another node
    await eventually(lambda: _equals(answers("web.default.persys.local", "A"), ["127.0.0.2"]))
    await store.modify("Node", "", "n2", lambda n: n.spec.update(address="127.0.0.3:7100"))
    await eventually(lambda: _equals(answers("web.default.persys.local", "A"), ["127.0.0.3"]))

    await store.delete("Workload", "default", "web-1")
    await eventually(lambda: _keys(etcd, set()))
    await eventually(nxdomain)


async def test_two_replicas_share_a_name(store: ObjectStore, etcd: Etcd, registrar: Manager,
                                         dns_server: DnsServer) -> None:
    await store.create(node("n1", "127.0.0.1:7100"))
    await store.create(node("n2", "127.0.0.2:7100"))
    for name, node_name in (("web-1", "n1"), ("web-2", "n2")):
        await store.create(web(name, node_name))
        await set_phase(store, "Running", node_name, name)

    async def addresses() -> list[str]:
        response = await ask(dns_server, "web.default.persys.local", "A")
        return sorted(rd.to_text() for rrset in response.answer for rd in rrset)

    await eventually(lambda: _equals(addresses(), ["127.0.0.1", "127.0.0.2"]))
    await store.modify("Workload", "default", "web-2", lambda w: w.spec.update(desiredState="Stopped"))
    await eventually(lambda: _equals(addresses(), ["127.0.0.1"]))


async def test_orphans_are_removed(store: ObjectStore, etcd: Etcd, etcd_server: EtcdServer) -> None:
    orphan = SkyRecord(name_to_key("old.default.persys.local") + "/gone-1", "127.0.0.1")
    api = SkyRecord(name_to_key("_persys-api._tcp.persys.local") + "/api-1", "127.0.0.1", port=7443)
    for record in (orphan, api):
        await etcd.put(record.key, record.encode())
    manager = Manager(Etcd(etcd_server.url), component="dns-test", lease_ttl=2, listen=None, owns_etcd=True)
    manager.add(DnsRegistrar(ZONE))
    task = asyncio.create_task(manager.run(), name="dns-registrar-manager")
    try:
        await store.create(web())  # any reconcile loads the index and finds the orphan
        await eventually(lambda: _keys(etcd, {api.key}))  # the API server's record is not the registrar's
    finally:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def _keys(etcd: Etcd, expected: set[str]) -> bool:
    return set(await records(etcd)) == expected


async def _equals(value: object, expected: object) -> bool:
    assert asyncio.iscoroutine(value)
    return await value == expected


async def test_writes_are_fenced(etcd: Etcd, etcd_server: EtcdServer) -> None:
    manager = Manager(Etcd(etcd_server.url), component="dns-test", lease_ttl=2, listen=None, owns_etcd=True)
    registrar = DnsRegistrar(ZONE)
    manager.add(registrar)
    fence = await manager.elector.acquire()
    try:
        registrar._index = {}
        await registrar._put(("default", "web-1"), A_KEY, SkyRecord(A_KEY, "127.0.0.1").encode())
        assert await etcd.get(A_KEY) is not None
        await etcd.delete(fence.key)
        await etcd.put(fence.key, b"another-process")  # someone else leads now; this one has not noticed
        other = name_to_key("web.default.persys.local") + "/web-2"
        with pytest.raises(NotLeader):
            await registrar._put(("default", "web-2"), other, SkyRecord(other, "127.0.0.1").encode())
        with pytest.raises(NotLeader):
            await registrar._delete(("default", "web-1"), A_KEY)
        assert await etcd.get(other) is None and await etcd.get(A_KEY) is not None
    finally:
        await manager.elector.resign()
        await manager.etcd.close()
