"""Status writes that race other writers, through the API: a PUT without resourceVersion lands, and the
agent's heartbeat treats a Conflict as "retry now", not as an unreachable control plane."""

from __future__ import annotations

import asyncio
from typing import Any

from persys.agentd.node import NodeRegistration
from persys.client import ApiClient
from persys.errors import Conflict, PersysError
from persys.resources import Resource
from tests.support.cluster import RunningApi
from tests.support.workloads import workload

WRITERS = 3  # with the apply, fewer contenders than the API's apply retries (5): nobody can lose them all


async def test_status_puts_without_version_race_and_all_land(api: RunningApi) -> None:
    async with api.client() as client:
        await client.create(workload("web"))
        results = await asyncio.gather(
            client.apply(workload("web", image="other")),
            *(client.update_status("Workload", "web", {"phase": "Running", "restarts": i}) for i in range(WRITERS)))
        final = await client.get("Workload", "web")
        assert final.spec["image"] == "other" and final.status["phase"] == "Running"
        assert len({r.metadata.resourceVersion for r in results[1:]}) == WRITERS


class ConflictOnce(ApiClient):
    """An API client whose first status write meets a Conflict (a race the store gave up on)."""

    conflicts = 1

    async def update_status(self, kind: str, name: str, status: dict[str, Any], **kw: Any) -> Resource:
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict(f'node "{name}" was modified concurrently; retry')
        return await super().update_status(kind, name, status, **kw)


async def test_heartbeat_conflict_is_retried_at_once(api: RunningApi) -> None:
    node_api = ConflictOnce(api.secure_url, ca=api.pki.ca_cert, cert=api.pki.cert("node-n1"),
                            key=api.pki.key("node-n1"), timeout=5.0)
    registration = NodeRegistration(node_api, "n1", "127.0.0.1:7999", {}, "simulated", interval=0.05)
    back_offs: list[PersysError] = []

    async def no_back_off(error: PersysError, backoff: float) -> float:
        back_offs.append(error)
        return backoff

    two_beats = asyncio.Event()
    beat = registration.heartbeat

    async def counted_beat() -> None:
        await beat()
        if registration.heartbeats >= 2:
            two_beats.set()

    registration._back_off = no_back_off  # type: ignore[method-assign]
    registration.heartbeat = counted_beat  # type: ignore[method-assign]
    task = asyncio.create_task(registration.run(), name="node-registration")
    try:
        await asyncio.wait_for(two_beats.wait(), 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await registration.close()
    assert node_api.conflicts == 0 and back_offs == []
    async with api.client() as admin:
        assert (await admin.get("Node", "n1", namespace="")).status["lastHeartbeatTime"]
