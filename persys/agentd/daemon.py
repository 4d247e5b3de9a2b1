"""One node agent: a runtime, its executor and event hub, the HTTP listener and Node heartbeats.

``Agent`` is what ``persys agent`` and ``persys up`` run, and what the tests start in-process.
Stopping an agent closes its listener and connections but never stops a workload: the
containers keep running and the next agent rebuilds its state from them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from persys.agentd.events import EventHub
from persys.agentd.executor import Executor
from persys.agentd.node import NodeRegistration
from persys.agentd.runtime import Runtime
from persys.agentd.server import make_app
from persys.observability.logging import get_logger
from persys.security.hmac import Verifier

log = get_logger("agent")


@dataclass
class AgentConfig:
    """Everything one agent needs; ``runtime_factory`` builds its runtime from (node, hub)."""

    name: str
    host: str
    port: int
    secrets: dict[str, bytes]
    runtime_factory: Callable[[str, EventHub], Runtime]
    labels: dict[str, str] = field(default_factory=dict)
    parallelism: int = 8
    max_skew: int = 300
    registration: NodeRegistration | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Agent:
    """Starts and stops one node agent inside the current event loop."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.hub = EventHub()
        self.runtime = config.runtime_factory(config.name, self.hub)
        self.executor = Executor(config.name, parallelism=config.parallelism)
        self.verifier = Verifier(config.secrets, max_skew=config.max_skew)
        self._runner: web.AppRunner | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.address}"

    async def start(self) -> None:
        await self.runtime.open()
        app = make_app(self.config.name, self.runtime, self.executor, self.hub, self.verifier)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        if self.config.registration is not None:
            self._heartbeat = asyncio.create_task(self.config.registration.run(),
                                                  name=f"agent-heartbeat-{self.config.name}")
        log.info("agent listening", node=self.config.name, address=self.config.address,
                 runtime=self.runtime.name)

    async def stop(self) -> None:
        """Close the listener and background work; containers keep running."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
        self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.executor.close()
        await self.runtime.close()
        if self.config.registration is not None:
            await self.config.registration.close()
        log.info("agent stopped", node=self.config.name)

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
