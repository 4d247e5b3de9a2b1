"""The agent over a real dockerd: containers, idempotent applies, lifecycle, logs, events, restarts."""

from __future__ import annotations

import asyncio

import aiodocker
import pytest
from agent_support import docker_kill_event, new_uid

from persys.errors import NotFound
from persys.resources.hashing import spec_hash
from tests.support.eventually import eventually
from tests.support.workloads import agent_workload as workload

SCRIPT = ["sh", "-c", 'echo "hello $GREETING"; trap "exit 0" TERM; while true; do sleep 1; done']


async def test_apply_creates_one_labelled_container(start_agent, client_for, docker_runtime,  # type: ignore[no-untyped-def]
                                                    docker_cleanup: aiodocker.Docker) -> None:
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    body = workload(uid, agent.config.name, command=SCRIPT, env={"GREETING": "persys"},
                    resources={"cpu": "250m", "memory": "64Mi"})
    ops = await asyncio.gather(*(client.apply(body) for _ in range(10)))
    results = await asyncio.gather(*(client.wait(op, 30) for op in ops))
    assert [r["state"] for r in results] == ["succeeded"] * 10, results
    found = await docker_cleanup.containers.list(all=True, filters={"label": [f"persys.dev/uid={uid}"]})
    assert len(found) == 1
    info = await found[0].show()
    assert info["Name"] == f"/persys-{uid}" and info["State"]["Running"]
    labels = info["Config"]["Labels"]
    assert labels["persys.dev/uid"] == uid and labels["persys.dev/node"] == agent.config.name
    assert labels["persys.dev/name"] == f"w-{uid[:8]}" and labels["persys.dev/namespace"] == "default"
    assert labels["persys.dev/spec-hash"] == spec_hash(body["spec"])
    assert [info["Path"], *info["Args"]] == SCRIPT
    assert "GREETING=persys" in info["Config"]["Env"]
    assert info["HostConfig"]["NetworkMode"] == "host" and info["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert info["HostConfig"]["NanoCpus"] == 250_000_000 and info["HostConfig"]["Memory"] == 64 * 1024**2
    state = await client.get(uid)
    assert state["state"] == "running" and state["containerID"] == info["Id"] and state["exitCode"] is None
    assert state["startedAt"].endswith("Z") and state["specHash"] == labels["persys.dev/spec-hash"]
    assert [s["uid"] for s in await client.list()] == [uid]
    # a changed spec replaces the container; the same spec again changes nothing
    changed = workload(uid, agent.config.name, command=SCRIPT, env={"GREETING": "again"})
    for _ in range(2):
        assert (await client.wait(await client.apply(changed), 30))["state"] == "succeeded"
    replaced = await client.get(uid)
    assert replaced["containerID"] != info["Id"] and replaced["state"] == "running"
    assert len(await docker_cleanup.containers.list(all=True, filters={"label": [f"persys.dev/uid={uid}"]})) == 1


async def test_lifecycle_and_logs(start_agent, client_for, docker_runtime) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    await client.wait(await client.apply(workload(uid, agent.config.name, command=SCRIPT,
                                                  env={"GREETING": "logs"})), 30)

    async def logged() -> str | None:
        text = await client.logs(uid, tail=10)
        return text if "hello logs" in text else None

    await eventually(logged, what="log line")
    stopped = await client.wait(await client.stop(uid), 30)
    assert stopped["state"] == "succeeded", stopped
    state = await client.get(uid)
    assert state["state"] == "exited" and state["exitCode"] == 0 and state["finishedAt"]
    await client.wait(await client.start(uid), 30)
    started = await client.get(uid)
    assert started["state"] == "running" and started["containerID"] == state["containerID"]
    await client.wait(await client.restart(uid), 30)
    restarted = await client.get(uid)
    assert restarted["state"] == "running" and restarted["startedAt"] != started["startedAt"]
    lines: list[str] = []
    async for chunk in client.follow_logs(uid, tail=1):
        lines.append(chunk)
        break
    assert "hello logs" in lines[0]
    assert (await client.wait(await client.remove(uid), 30))["state"] == "succeeded"
    with pytest.raises(NotFound):
        await client.get(uid)
    assert await client.list() == []


async def test_event_stream_reports_docker_kill(start_agent, client_for, docker_runtime) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    await client.wait(await client.apply(workload(uid, agent.config.name)), 30)
    exited = await docker_kill_event(client, uid, f"persys-{uid}")
    assert exited["exitCode"] == 137 and exited["type"] == "state" and exited["time"]


async def test_agent_restart_recovers_without_relaunching(start_agent, client_for, docker_runtime) -> None:  # type: ignore[no-untyped-def]
    first = await start_agent(docker_runtime)
    uid = new_uid()
    client = client_for(first)
    await client.wait(await client.apply(workload(uid, first.config.name)), 30)
    before = await client.get(uid)
    await first.stop()
    second = await start_agent(docker_runtime)
    client = client_for(second)
    after = await client.get(uid)
    assert after == before
    # applying the same spec again is a no-op: same container, same start time
    await client.wait(await client.apply(workload(uid, second.config.name)), 30)
    assert await client.get(uid) == before


async def test_bad_inputs_fail_clearly(start_agent, client_for, docker_runtime) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid, image = new_uid(), "127.0.0.1:9/persys-nope:1"  # a closed port: dockerd fails at once
    op = await client.wait(await client.apply(workload(uid, agent.config.name, image=image)), 60)
    assert op["state"] == "failed" and op["message"].startswith(f"docker pull {image}: "), op
    assert "connection refused" in op["message"]
    # the uid is known by its failed launch only: no container to stop or read logs from
    assert (await client.get(uid))["reason"] == "ImagePullFailed"
    stop = await client.wait(await client.stop(uid), 30)
    assert stop["state"] == "failed" and uid in stop["message"], stop
    with pytest.raises(NotFound, match=uid):
        await client.logs(uid)
    with pytest.raises(NotFound, match="no-such-uid"):
        await client.stop("no-such-uid")
