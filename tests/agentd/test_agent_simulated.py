"""The agent API over the simulated runtime: operations, ordering, idempotence, events, errors."""

from __future__ import annotations

import asyncio

import pytest
from agent_support import new_uid

from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.errors import AgentError, NotFound
from tests.support.eventually import eventually
from tests.support.workloads import agent_workload as workload


async def test_apply_reports_running_and_is_idempotent(start_agent, client_for) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    client = client_for(agent)
    uid = new_uid()
    op = await client.wait(await client.apply(workload(uid, agent.config.name)), 10)
    assert op["state"] == "succeeded" and op["uid"] == uid and op["action"] == "apply"
    state = await client.get(uid)
    assert state["state"] == "running" and state["node"] == agent.config.name and state["startedAt"]
    assert set(state) == {"uid", "name", "namespace", "node", "containerID", "state", "exitCode", "startedAt",
                          "finishedAt", "specHash", "message", "reason", "revision", "containerReady", "probeMessage"}
    ops = await asyncio.gather(*(client.apply(workload(uid, agent.config.name)) for _ in range(10)))
    results = await asyncio.gather(*(client.wait(op_id, 10) for op_id in ops))
    assert all(r["state"] == "succeeded" for r in results)
    assert [s["containerID"] for s in await client.list()] == [state["containerID"]]
    # a different spec hash replaces the container
    await client.wait(await client.apply(workload(uid, agent.config.name, env={"A": "1"})), 10)
    replaced = await client.get(uid)
    assert replaced["containerID"] != state["containerID"] and replaced["specHash"] != state["specHash"]


async def test_lifecycle_and_events(start_agent, client_for) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    client = client_for(agent)
    uid = new_uid()
    await client.wait(await client.apply(workload(uid, agent.config.name)), 10)
    seen: list[dict] = []  # type: ignore[type-arg]

    async def follow() -> None:
        async for event in client.events():
            seen.append(event)

    follower = asyncio.create_task(follow())
    try:
        await eventually(lambda: _has(seen, uid, "running"), what="initial snapshot")
        for action, expected in (("stop", "exited"), ("start", "running"), ("restart", "running")):
            op = await client.wait(await getattr(client, action)(uid), 10)
            assert op["state"] == "succeeded", op
            assert (await client.get(uid))["state"] == expected
        await eventually(lambda: _has(seen, uid, "exited"), what="exited event")
        await client.wait(await client.remove(uid), 10)
        await eventually(lambda: _has(seen, uid, "missing"), what="removal event")
        assert all(e["type"] == "state" and e["time"] for e in seen)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    with pytest.raises(NotFound):
        await client.get(uid)


async def _true(value: bool) -> bool:
    return value


def _has(events: list[dict], uid: str, state: str):  # type: ignore[no-untyped-def,type-arg]
    return _true(any(e.get("uid") == uid and e.get("state") == state for e in events))


async def test_unknown_uids_and_bad_requests(start_agent, client_for) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    client = client_for(agent)
    uid = new_uid()
    for call in (client.get, client.stop, client.start, client.restart, client.remove, client.logs):
        with pytest.raises(NotFound, match=uid):
            await call(uid)
    with pytest.raises(NotFound, match="operation"):
        await client.operation("op-nope")
    with pytest.raises(AgentError, match="spec.image is required"):
        await client.apply({"metadata": {"uid": uid}, "spec": {"type": "container"}})
    with pytest.raises(AgentError, match="bound to node"):
        await client.apply(workload(uid, "some-other-node"))
    with pytest.raises(AgentError, match="unreachable"):
        await type(client)("http://127.0.0.1:9", "default", b"x", timeout=2).list()


async def test_injected_exits_and_start_latency(start_agent, client_for) -> None:  # type: ignore[no-untyped-def]
    config = SimulationConfig(start_latency=0.05, exit_after=0.1, exit_code=3)
    agent = await start_agent(lambda node, hub: SimulatedRuntime(node, hub, config))
    client = client_for(agent)
    uid = new_uid()
    await client.wait(await client.apply(workload(uid, agent.config.name)), 10)

    async def exited() -> dict | None:  # type: ignore[type-arg]
        state = await client.get(uid)
        return state if state["state"] == "exited" else None

    state = await eventually(exited, what="injected exit")
    assert state["exitCode"] == 3 and state["finishedAt"]


async def test_operations_on_one_uid_run_in_order(start_agent, client_for) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent(lambda node, hub: SimulatedRuntime(node, hub, SimulationConfig(start_latency=0.02)))
    client = client_for(agent)
    uid = new_uid()
    ops = [await client.apply(workload(uid, agent.config.name)), await client.stop(uid), await client.start(uid),
           await client.stop(uid)]
    results = [await client.wait(op, 10) for op in ops]
    assert [r["state"] for r in results] == ["succeeded"] * 4
    assert (await client.get(uid))["state"] == "exited"
