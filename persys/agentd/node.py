"""Node registration and heartbeats: how the control plane learns this agent exists and lives.

The agent PUTs its Node (spec: address, labels) and then, every 10 seconds, its status
(capacity, allocatable, Ready condition, lastHeartbeatTime, runtime). When the API cannot be
reached it retries with back-off and changes nothing else: losing the control plane never
stops a workload. Any other error ends ``run``: the agent's supervisor logs it, turns the
agent's ``/healthz`` red and runs it again (it registers anew). With discovery set up
(``discover`` and ``connect``), the agent picks its API server by DNS SRV before registering
and again whenever the current one cannot be reached, so that it follows the API servers that
are alive.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from persys.client.api import ApiClient
from persys.errors import Conflict, NotFound, PersysError, Unavailable
from persys.observability.logging import get_logger
from persys.resources import NODE, ObjectMeta, Resource
from persys.resources.model import now_iso
from persys.runtime.backoff import Backoff

HEARTBEAT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 30.0
CONFLICT_RETRIES = 3  # in a row, at once; then a Conflict backs off like any other error

log = get_logger("agent")


def host_capacity() -> dict[str, str]:
    """CPU cores and memory of this host, as Kubernetes quantities."""
    memory = "0"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1])}Ki"
                break
    except OSError:
        pass
    return {"cpu": str(os.cpu_count() or 1), "memory": memory}


class NodeRegistration:
    """Registers one Node and keeps its heartbeat going until cancelled.

    ``discover()`` names the API server to use (see ``persys.client.discovery.pick_api_server``)
    and ``connect(url)`` makes a client for it; without them ``api`` is used throughout.
    """

    def __init__(self, api: ApiClient, name: str, address: str, labels: dict[str, str], runtime: str,
                 *, interval: float = HEARTBEAT_SECONDS, capacity: dict[str, str] | None = None,
                 discover: Callable[[], Awaitable[str]] | None = None,
                 connect: Callable[[str], ApiClient] | None = None) -> None:
        self.api = api
        self.discover = discover
        self.connect = connect
        self.name = name
        self.address = address
        self.labels = dict(labels)
        self.runtime = runtime
        self.interval = interval
        self.capacity = capacity or host_capacity()
        self.ready_since = now_iso()
        self.heartbeats = 0
        self.backoff = Backoff(1.0, MAX_BACKOFF_SECONDS)

    async def choose_server(self) -> None:
        """Switch ``api`` to the server discovery picks now (no-op without discovery)."""
        if self.discover is None or self.connect is None:
            return
        try:
            url = (await self.discover()).rstrip("/")
        except Exception as e:  # discovery is a convenience: never let it stop the heartbeats
            log.warning("API server discovery failed; keeping the current server", node=self.name,
                        server=self.api.server, error=f"{type(e).__name__}: {e}")
            return
        if url == self.api.server:
            return
        old, self.api = self.api, self.connect(url)
        await old.close()
        log.info("using API server", node=self.name, server=url)

    async def register(self) -> None:
        """Create or update the Node's spec, keeping fields an admin set (unschedulable)."""
        spec: dict[str, Any] = {"address": self.address, "labels": self.labels}
        try:
            current = await self.api.get(NODE.kind, self.name)
            spec = {**current.spec, **spec}
        except NotFound:
            pass
        await self.api.apply(Resource(kind=NODE.kind, metadata=ObjectMeta(name=self.name), spec=spec))

    async def heartbeat(self) -> None:
        status = {
            "capacity": dict(self.capacity),
            "allocatable": dict(self.capacity),
            "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady",
                            "message": f"agent is posting heartbeats every {self.interval:g}s",
                            "lastTransitionTime": self.ready_since}],
            "lastHeartbeatTime": now_iso(),
            "runtime": self.runtime,
        }
        await self.api.update_status(NODE.kind, self.name, status, namespace="")
        self.heartbeats += 1

    async def run(self) -> None:
        """Register, then heartbeat forever; on API errors back off (1 s doubling to 30 s) and retry.

        A Conflict means the control plane answered and another writer got in between (an admin
        cordoning the Node while it re-registers): that is retried at once, a few times, not backed off.
        """
        registered = False
        conflicts = 0
        while True:
            try:
                if not registered:
                    await self.choose_server()
                    await self.register()
                    registered = True
                    log.info("node registered", node=self.name, address=self.address)
                await self.heartbeat()
                self.backoff.reset()
                conflicts = 0
                await asyncio.sleep(self.interval)
            except Conflict as e:
                conflicts += 1
                if conflicts <= CONFLICT_RETRIES:
                    log.info("node write conflicted with another writer, retrying now", node=self.name,
                             error=e.message)
                    continue
                conflicts = 0
                await self._back_off(e)
            except PersysError as e:
                registered = registered and not isinstance(e, NotFound)
                await self._back_off(e)

    async def _back_off(self, error: PersysError) -> None:
        """Wait out the back-off (picking a server again if this one is gone)."""
        what = "control plane unreachable" if isinstance(error, Unavailable) else "control plane refused the write"
        delay = self.backoff.next()
        log.warning(f"{what}, retrying", node=self.name, error=error.message, retry_in=round(delay, 3))
        await asyncio.sleep(delay)
        if isinstance(error, Unavailable):
            await self.choose_server()

    async def close(self) -> None:
        await self.api.close()
