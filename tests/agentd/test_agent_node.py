"""Node registration against a real API server (mTLS, etcd): the Node appears, heartbeats flow,
an unreachable API changes nothing for the workloads, and a heartbeat loop that dies of a bug
is logged, turns the agent's /healthz red and is restarted."""

from __future__ import annotations

from typing import Any

import aiohttp
from agent_support import KEY_ID, SECRET, new_uid
from structlog.testing import capture_logs

from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.node import NodeRegistration
from persys.agentd.runtime import Runtime
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.client import ApiClient
from persys.errors import PersysError
from persys.runtime.supervisor import TASK_FAILURES, Supervisor
from persys.store.server import free_port
from tests.support.eventually import eventually
from tests.support.workloads import agent_workload as workload

try:  # tests/support is shared; how it is importable depends on whether tests/ is a package
    from support.cluster import RunningApi, api, pki_home  # noqa: F401
except ImportError:
    from tests.support.cluster import RunningApi, api, pki_home  # noqa: F401


async def test_agent_registers_and_heartbeats(api: RunningApi, client_for) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    node_api = ApiClient(api.secure_url, ca=api.pki.ca_cert, cert=api.pki.cert("node-n1"),
                         key=api.pki.key("node-n1"), timeout=2.0)
    registration = NodeRegistration(node_api, "n1", "127.0.0.1:7999", {"zone": "a"}, "simulated", interval=0.2)
    agent = simulated_agent(registration)
    await agent.start()
    admin = api.client()
    try:
        async def node_with_heartbeats():  # type: ignore[no-untyped-def]
            try:
                node = await admin.get("Node", "n1")
            except PersysError:
                return None
            return node if registration.heartbeats >= 2 and node.status.get("lastHeartbeatTime") else None

        node = await eventually(node_with_heartbeats, what="registered Node with heartbeats")
        assert node.spec["address"] == "127.0.0.1:7999" and node.spec["labels"] == {"zone": "a"}
        ready = next(c for c in node.status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and node.status["runtime"] == "simulated"
        assert int(node.status["capacity"]["cpu"]) >= 1 and node.status["capacity"]["memory"].endswith("Ki")
        first_beat = node.status["lastHeartbeatTime"]

        async def newer_beat():  # type: ignore[no-untyped-def]
            current = await admin.get("Node", "n1")
            return current.status["lastHeartbeatTime"] > first_beat

        await eventually(newer_beat, what="a later heartbeat")

        # losing the control plane never stops a workload
        client = client_for(agent)
        uid = new_uid()
        await client.wait(await client.apply(workload(uid, "n1")), 10)
        api.thread.stop()
        beats = registration.heartbeats

        async def failing() -> bool:
            return registration.heartbeats == beats

        await eventually(failing, what="heartbeats to stop")
        assert (await client.get(uid))["state"] == "running"
        assert await client.healthz()
    finally:
        await admin.close()
        await agent.stop()


def simulated(node: str, hub: Any) -> Runtime:
    return SimulatedRuntime(node, hub, SimulationConfig())


def simulated_agent(registration: NodeRegistration) -> Agent:
    return Agent(AgentConfig(name="n1", host="127.0.0.1", port=free_port(), secrets={KEY_ID: SECRET},
                             runtime_factory=simulated, registration=registration))


async def test_a_dead_heartbeat_is_logged_turns_healthz_red_and_is_restarted(api: RunningApi) -> None:  # noqa: F811
    node_api = ApiClient(api.secure_url, ca=api.pki.ca_cert, cert=api.pki.cert("node-n1"),
                         key=api.pki.key("node-n1"), timeout=2.0)
    registration = NodeRegistration(node_api, "n1", "127.0.0.1:7999", {}, "simulated", interval=0.1)
    working = registration.heartbeat
    broken = True

    async def heartbeat() -> None:  # a bug in the loop, not an API error: the loop dies of it
        if broken:
            raise KeyError("capacity")
        await working()

    registration.heartbeat = heartbeat  # type: ignore[method-assign]
    agent = simulated_agent(registration)
    counted = TASK_FAILURES.labels("agent-n1/heartbeat")._value.get()

    async def healthz() -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(agent.url + "/healthz") as response:
            return response.status, await response.json()

    async def red() -> dict[str, Any] | None:
        status, body = await healthz()
        return body if status == 503 and body["failing"][0]["failures"] >= 2 else None

    with capture_logs() as logs:
        async with Supervisor("agent", backoff=(0.05, 0.2), stable_after=0.5) as supervisor:
            await agent.start(supervisor)
            body = await eventually(red, what="/healthz red after the heartbeat died twice")
            assert body["node"] == "n1" and body["failing"][0]["task"] == "agent-n1/heartbeat"
            assert "task agent-n1/heartbeat died" in body["reason"] and "KeyError: 'capacity'" in body["reason"]
            died = [e for e in logs if e["event"] == "task died; restarting"]
            assert died[0]["task"] == "agent-n1/heartbeat" and isinstance(died[0]["exc_info"], KeyError)
            assert TASK_FAILURES.labels("agent-n1/heartbeat")._value.get() - counted >= 2

            broken = False  # fixed: the next restart registers again and heartbeats flow
            await eventually(lambda: registration.heartbeats >= 3, what="heartbeats after the restart")
            await eventually(lambda: _status(healthz, 200), what="/healthz green once the loop has run a while")
    assert agent._runner is None  # the process's supervisor ended the agent too


async def _status(healthz: Any, wanted: int) -> bool:
    return bool((await healthz())[0] == wanted)
