"""Fixtures for the agent tests: an in-process agent on a free 127.0.0.1 port and a signing client."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiodocker
import pytest
from agent_support import KEY_ID, SECRET

from persys.agentclient import AgentClient
from persys.agentd.daemon import Agent, AgentConfig
from persys.agentd.docker import DockerRuntime
from persys.agentd.events import EventHub
from persys.agentd.runtime import Runtime
from persys.agentd.simulated import SimulatedRuntime, SimulationConfig
from persys.store.server import free_port

RuntimeFactory = Callable[[str, EventHub], Runtime]
AgentFactory = Callable[..., Awaitable[Agent]]


@pytest.fixture
def node_name() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture
async def start_agent(node_name: str) -> AsyncIterator[AgentFactory]:
    """Starts agents for this test (stop and start again to simulate an agent restart)."""
    started: list[Agent] = []

    async def start(factory: RuntimeFactory | None = None, port: int | None = None) -> Agent:
        config = AgentConfig(name=node_name, host="127.0.0.1", port=port or free_port(),
                             secrets={KEY_ID: SECRET},
                             runtime_factory=factory or (lambda n, hub: SimulatedRuntime(n, hub, SimulationConfig())))
        agent = Agent(config)
        await agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent._runner is not None:
            await agent.stop()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Agent], AgentClient]]:
    clients: list[AgentClient] = []

    def make(agent: Agent) -> AgentClient:
        client = AgentClient(agent.url, KEY_ID, SECRET)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def docker_cleanup(node_name: str) -> AsyncIterator[aiodocker.Docker]:
    """A Docker client; removes every container labelled with this test's node in teardown."""
    docker = aiodocker.Docker()
    try:
        yield docker
    finally:
        for container in await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={node_name}"]}):
            await container.delete(force=True)
        await docker.close()


@pytest.fixture
def docker_runtime(tmp_path: Path, docker_cleanup: aiodocker.Docker) -> RuntimeFactory:
    return lambda node, hub: DockerRuntime(node, hub, tmp_path / "state", stop_timeout=1)
