"""Every component's ``/metrics``, scraped over HTTP and parsed like Prometheus, moves with real work.

API (plain listener, counting mTLS requests by route template), agent (operations; Docker call
latency over the real dockerd), controllers manager (work queues, reconciles, actions, errors,
retries, informer relists and stalls, leadership) and the DNS server (queries by type and rcode).
All components share the process's registry, so each check compares a scrape before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiodocker
import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from persys.agentclient import AgentClient
from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.docker import DockerRuntime
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.controllers import ControllersConfig, build_manager
from persys.dns import DnsServer, register_api_server
from persys.errors import NotFound
from persys.resources import REGISTRY
from persys.resources.model import now_iso
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer, free_port
from tests.observability.scrape import moved, scrape, value
from tests.support.cluster import RunningApi
from tests.support.eventually import eventually
from tests.support.hollow import FAST, SECRET, start_hollow_node
from tests.support.workloads import SLEEP, agent_workload, workload

NS_ROUTE = "/apis/persys.dev/v1/namespaces/{namespace}/{plural}"


async def test_api_counts_mtls_requests_by_route_method_and_code(api: RunningApi) -> None:
    metrics = api.plain_url + "/metrics"
    before = await scrape(metrics)
    async with api.client() as client:
        await client.create(workload("counted", command=SLEEP, network="host"))
        await client.list("Workload")
        with pytest.raises(NotFound):
            await client.get("Workload", "absent")
    after = await scrape(metrics)
    assert moved(before, after, "persys_api_requests_total", route=NS_ROUTE, method="POST", code="201") == 1
    assert moved(before, after, "persys_api_requests_total", route=NS_ROUTE, method="GET", code="200") == 1
    assert moved(before, after, "persys_api_requests_total", route=NS_ROUTE + "/{name}", method="GET",
                 code="404") == 1
    assert moved(before, after, "persys_api_request_duration_seconds_count", route=NS_ROUTE, method="POST") == 1
    assert moved(before, after, "persys_api_request_duration_seconds_bucket", route=NS_ROUTE, method="POST",
                 le="+Inf") == 1
    # the scrape itself is counted under its route, on the plain listener
    assert moved(before, after, "persys_api_requests_total", route="/metrics", method="GET", code="200") == 1


@pytest.fixture
async def agent_with(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[tuple[Agent, AgentClient]] = []

    async def start(runtime: str) -> tuple[Agent, AgentClient]:
        name = f"obs-{secrets.token_hex(4)}"
        factory: Any = (lambda n, hub: DockerRuntime(n, hub, tmp_path / "state", stop_timeout=1)) \
            if runtime == "docker" else (lambda n, hub: SimulatedRuntime(n, hub, SimulationConfig()))
        agent = Agent(AgentConfig(name=name, host="127.0.0.1", port=free_port(), secrets={"default": SECRET},
                                  runtime_factory=factory))
        await agent.start()
        client = AgentClient(agent.url, "default", SECRET)
        started.append((agent, client))
        return agent, client

    yield start
    docker = aiodocker.Docker()
    try:
        for agent, client in started:
            await client.close()
            await agent.stop()
            for container in await docker.containers.list(
                    all=True, filters={"label": [f"persys.dev/node={agent.config.name}"]}):
                await container.delete(force=True)
    finally:
        await docker.close()


async def test_agent_counts_operations(agent_with: Any) -> None:
    agent, client = await agent_with("simulated")
    before = await scrape(agent.url + "/metrics")
    uid = str(uuid.uuid4())
    assert (await client.wait(await client.apply(agent_workload(uid, agent.config.name)), 10))["state"] == "succeeded"
    assert (await client.wait(await client.remove(uid), 10))["state"] == "succeeded"
    after = await scrape(agent.url + "/metrics")
    assert moved(before, after, "persys_agent_operations_total", action="apply", result="succeeded") == 1
    assert moved(before, after, "persys_agent_operations_total", action="remove", result="succeeded") == 1
    assert moved(before, after, "persys_agent_operation_duration_seconds_count", action="apply") == 1


async def test_agent_times_docker_calls(agent_with: Any) -> None:
    agent, client = await agent_with("docker")
    before = await scrape(agent.url + "/metrics")
    uid = str(uuid.uuid4())
    assert (await client.wait(await client.apply(agent_workload(uid, agent.config.name)), 30))["state"] == "succeeded"
    assert (await client.wait(await client.remove(uid), 30))["state"] == "succeeded"
    after = await scrape(agent.url + "/metrics")
    assert moved(before, after, "persys_agent_docker_call_duration_seconds_count") >= 2
    calls = {dict(labels)["call"] for (name, labels), v in after.items()
             if name == "persys_agent_docker_call_duration_seconds_count" and v > value(before, name, **dict(labels))}
    assert calls, "no Docker call was timed"
    assert moved(before, after, "persys_agent_operations_total", action="apply", result="succeeded") == 1


async def _ghost_node(store: ObjectStore, name: str) -> None:
    """A Ready node whose agent address has nobody listening: every agent call fails.

    Unschedulable, so that only the workload pinned to it (``spec.nodeName``) lands there.
    """
    node = REGISTRY.parse({"kind": "Node", "metadata": {"name": name},
                           "spec": {"address": f"127.0.0.1:{free_port()}", "unschedulable": True}})
    await store.create(node)
    await store.update_status("Node", "", name, {
        "capacity": {"cpu": "4", "memory": "8Gi"}, "allocatable": {"cpu": "4", "memory": "8Gi"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady", "message": "",
                        "lastTransitionTime": now_iso()}], "lastHeartbeatTime": now_iso()})


async def test_controllers_manager_metrics(etcd_server: EtcdServer, store: ObjectStore) -> None:
    node = await start_hollow_node("obs-node", store)
    config = ControllersConfig.from_dict({**FAST, "watch_stall_seconds": 0.5})
    port = free_port()
    manager = build_manager(etcd_server.url, listen=f"127.0.0.1:{port}", config=config, hmac_secret=SECRET,
                            identity="obs", controllers=("scheduler", "reconciler", "status", "monitor"))
    url = f"http://127.0.0.1:{port}/metrics"
    await _ghost_node(store, "obs-ghost")  # before the monitor runs: it writes node status too
    task = asyncio.create_task(manager.run(), name="manager-obs")
    try:
        await eventually(lambda: _answers(url), what="the manager's /metrics")
        before = await scrape(url)
        await store.create(workload("metered", command=SLEEP, network="host"))
        await store.create(workload("doomed", command=SLEEP, network="host", nodeName="obs-ghost"))

        async def running() -> bool:
            return (await store.get("Workload", "default", "metered")).status.get("phase") == "Running"

        await eventually(running, what="the workload to run")

        async def settled() -> Any:
            after = await scrape(url)
            return after if moved(before, after, "persys_workqueue_retries_total", name="reconciler") >= 1 \
                and moved(before, after, "persys_watch_stalls_total") >= 1 else None

        after = await eventually(settled, what="a retry and a watch stall")
    finally:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await node.stop()
    for controller in ("scheduler", "reconciler"):
        assert moved(before, after, "persys_workqueue_adds_total", name=controller) >= 1, controller
        assert moved(before, after, "persys_reconcile_duration_seconds_count", controller=controller) >= 1
    assert ("persys_workqueue_depth", frozenset({("name", "reconciler")})) in after
    assert moved(before, after, "persys_reconcile_actions_total", action="create", result="ok") >= 1
    assert moved(before, after, "persys_reconcile_actions_total", result="error") >= 1
    assert moved(before, after, "persys_reconcile_errors_total", controller="reconciler") >= 1
    assert value(after, "persys_watch_relists_total", kind="Workload", reason="initial") >= 1
    assert moved(before, after, "persys_watch_relists_total", reason="stall") >= 1
    assert value(after, "persys_leader", component="controllers") == 1


async def _answers(url: str) -> bool:
    try:
        await scrape(url)
    except OSError:
        return False
    return True


async def test_dns_counts_queries_by_type_and_rcode(etcd: Etcd) -> None:
    server = DnsServer(etcd, "persys.local", "127.0.0.1", free_port(), metrics_listen=("127.0.0.1", 0))
    await server.start()
    registration = await register_api_server(etcd, "persys.local", "127.0.0.1", 17443)
    try:
        assert server.metrics is not None
        before = await scrape(server.metrics.url)

        async def ask(name: str, rdtype: str) -> str:
            query = dns.message.make_query(name, rdtype)
            response = await dns.asyncquery.udp(query, "127.0.0.1", timeout=5, port=server.port)
            return dns.rcode.to_text(response.rcode())

        await eventually(lambda: _is(ask("_persys-api._tcp.persys.local", "SRV"), "NOERROR"), what="the record")
        assert await ask("absent.persys.local", "A") == "NXDOMAIN"
        assert await ask("example.com", "A") == "REFUSED"
        after = await scrape(server.metrics.url)
    finally:
        await registration.close()
        await server.close()
    assert moved(before, after, "persys_dns_queries_total", qtype="SRV", rcode="NOERROR") >= 1
    assert moved(before, after, "persys_dns_queries_total", qtype="A", rcode="NXDOMAIN") == 1
    assert moved(before, after, "persys_dns_queries_total", qtype="A", rcode="REFUSED") == 1


async def _is(answer: Any, expected: str) -> bool:
    return bool(await answer == expected)
