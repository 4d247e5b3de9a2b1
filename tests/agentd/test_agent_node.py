"""Node registration against a real API server (mTLS, etcd): the Node appears, heartbeats flow,
and an unreachable API changes nothing for the workloads."""

from __future__ import annotations

from agent_support import KEY_ID, SECRET, eventually, new_uid, workload

from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.node import NodeRegistration
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.client import ApiClient
from persys.errors import PersysError
from persys.store.server import free_port

try:  # tests/support is shared; how it is importable depends on whether tests/ is a package
    from support.cluster import RunningApi, api, pki_home  # noqa: F401
except ImportError:
    from tests.support.cluster import RunningApi, api, pki_home  # noqa: F401


async def test_agent_registers_and_heartbeats(api: RunningApi, client_for) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    node_api = ApiClient(api.secure_url, ca=api.pki.ca_cert, cert=api.pki.cert("node-n1"),
                         key=api.pki.key("node-n1"), timeout=2.0)
    registration = NodeRegistration(node_api, "n1", "127.0.0.1:7999", {"zone": "a"}, "simulated", interval=0.2)

    def factory(node, hub):  # type: ignore[no-untyped-def]
        return SimulatedRuntime(node, hub, SimulationConfig())

    agent = Agent(AgentConfig(name="n1", host="127.0.0.1", port=free_port(), secrets={KEY_ID: SECRET},
                              runtime_factory=factory, registration=registration))
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
