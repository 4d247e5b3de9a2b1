"""Compose workloads from a local git repository made in the test: up, state, logs, stop, down, errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aiodocker
import pytest
from agent_support import docker_kill_event, new_uid

from persys.agentd.git import GitFetcher, validate_repo
from persys.errors import BadRequest, NotFound
from tests.support.eventually import eventually

COMPOSE_YAML = """\
services:
  web:
    image: persys/busybox:local
    network_mode: host
    command: ["sh", "-c", "echo web says $$GREETING; exec sleep 3600"]
    environment:
      GREETING: ${GREETING:-nothing}
  worker:
    image: persys/busybox:local
    network_mode: host
    command: ["sh", "-c", "echo worker ready; exec sleep 3600"]
"""


def make_repo(root: Path) -> Path:
    repo = root / "app"
    (repo / "deploy").mkdir(parents=True)
    (repo / "deploy" / "compose.yaml").write_text(COMPOSE_YAML)
    (repo / "README").write_text("a compose app\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "app"],
                 ["checkout", "-q", "-b", "release"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    return repo


def compose_workload(uid: str, node: str, **compose: object) -> dict:  # type: ignore[type-arg]
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": "app", "namespace": "default", "uid": uid},
            "spec": {"type": "compose", "nodeName": node, "env": {"GREETING": "hi-from-persys"},
                     "compose": {"path": "deploy", "ref": "main", **compose}}}


async def test_compose_up_state_logs_down(tmp_path, start_agent, client_for, docker_runtime,  # type: ignore[no-untyped-def]
                                          docker_cleanup: aiodocker.Docker) -> None:
    repo = make_repo(tmp_path)
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    body = compose_workload(uid, agent.config.name, repo=f"file://{repo}",
                            auth={"username": "u", "token": "s3cret-token"})
    op = await client.wait(await client.apply(body), 120)
    assert op["state"] == "succeeded", op
    state = await client.get(uid)
    assert state["state"] == "running" and state["specHash"] and state["containerID"], state
    assert "web: running" in state["message"] and "worker: running" in state["message"]
    containers = await docker_cleanup.containers.list(
        filters={"label": [f"com.docker.compose.project=persys-{uid}"]})
    assert len(containers) == 2
    assert all(c._container["Labels"]["persys.dev/node"] == agent.config.name for c in containers)
    assert [s["uid"] for s in await client.list()] == [uid]

    async def both_logged() -> str | None:
        text = await client.logs(uid, tail=20)
        return text if "web says hi-from-persys" in text and "worker ready" in text else None

    await eventually(both_logged, timeout=30, what="logs of both services")
    await _killing_a_service_is_reported(client, uid, containers[0].id)
    # the same spec again brings the killed service back, in the same containers
    await client.wait(await client.apply(body), 120)
    again = await client.get(uid)
    assert again["state"] == "running" and again["containerID"] == state["containerID"], again
    assert (await client.wait(await client.stop(uid), 60))["state"] == "succeeded"
    stopped = await client.get(uid)
    assert stopped["state"] == "exited", stopped
    assert (await client.wait(await client.start(uid), 60))["state"] == "succeeded"
    assert (await client.get(uid))["state"] == "running"
    assert (await client.wait(await client.remove(uid), 120))["state"] == "succeeded"
    with pytest.raises(NotFound):
        await client.get(uid)
    assert await docker_cleanup.containers.list(
        all=True, filters={"label": [f"com.docker.compose.project=persys-{uid}"]}) == []


async def _killing_a_service_is_reported(client, uid: str, container_id: str) -> None:  # type: ignore[no-untyped-def]
    """Compose containers carry the persys.dev labels, so Docker's events reach the agent's stream."""
    exited = await docker_kill_event(client, uid, container_id)
    assert exited["exitCode"] == 137 and "(137)" in exited["message"]


@pytest.mark.parametrize(("compose", "message"), [
    ({"repo": "--upload-pack=touch /tmp/pwned"}, "must not start with '-'"),
    ({"repo": "ssh://git@example.invalid/app.git"}, "scheme 'ssh' is not allowed"),
    ({"repo": "example.invalid:org/app.git"}, "is not allowed"),
    ({"repo": "/nonexistent/repo"}, "not an existing local directory"),
    ({"repo": "LOCAL", "path": "../../.."}, "spec.compose.path '../../..' escapes the repository"),
    ({"repo": "LOCAL", "path": ".", "file": "../../etc/passwd"}, "escapes the repository"),
    ({"repo": "LOCAL", "path": "."}, "no compose file"),
    ({"repo": "LOCAL", "ref": "no-such-branch"}, "git checkout failed"),
])
async def test_compose_bad_inputs(tmp_path, start_agent, client_for, docker_runtime,  # type: ignore[no-untyped-def]
                                  compose: dict, message: str) -> None:  # type: ignore[type-arg]
    repo = make_repo(tmp_path)
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    if compose["repo"] == "LOCAL":
        compose = {**compose, "repo": str(repo)}
    op = await client.wait(await client.apply(compose_workload(uid, agent.config.name, **compose)), 60)
    assert op["state"] == "failed" and message in op["message"], op
    state = await client.get(uid)  # the failed launch, remembered in place of a project
    assert (state["state"], state["reason"], state["message"]) == ("missing", "CreateContainerError", op["message"])
    assert not (tmp_path / "state" / "compose" / uid).exists()


async def test_refused_clone_is_reported_until_a_good_apply(tmp_path, start_agent, client_for,  # type: ignore[no-untyped-def]
                                                            docker_runtime) -> None:
    agent = await start_agent(docker_runtime)
    client = client_for(agent)
    uid = new_uid()
    refused = compose_workload(uid, agent.config.name, repo="https://127.0.0.1:9/x.git")
    op = await client.wait(await client.apply(refused), 60)
    assert op["state"] == "failed" and op["message"].startswith("git clone failed: "), op
    assert "Failed to connect to 127.0.0.1 port 9" in op["message"]
    state = await client.get(uid)
    assert (state["state"], state["reason"], state["message"]) == ("missing", "CreateContainerError", op["message"])
    assert state["finishedAt"].endswith("Z")
    good = compose_workload(uid, agent.config.name, repo=f"file://{make_repo(tmp_path)}")
    assert (await client.wait(await client.apply(good), 120))["state"] == "succeeded"
    state = await client.get(uid)
    assert state["state"] == "running" and state["reason"] == "", state
    assert (await client.wait(await client.remove(uid), 120))["state"] == "succeeded"


async def test_git_token_only_travels_through_the_environment(tmp_path: Path) -> None:
    fetcher = GitFetcher(tmp_path)
    env = fetcher.git.env("someone", "tok-123")
    for prompt, expected in (("Username for 'https://x': ", "someone"), ("Password for 'https://x': ", "tok-123")):
        process = await asyncio.create_subprocess_exec(env["GIT_ASKPASS"], prompt, env=env,
                                                       stdout=asyncio.subprocess.PIPE)
        out, _ = await process.communicate()
        assert out.decode().strip() == expected
    assert "tok-123" not in (tmp_path / "git-askpass.sh").read_text()
    with pytest.raises(BadRequest):
        validate_repo("ext::sh -c touch% /tmp/pwned")
