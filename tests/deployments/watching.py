"""Watching a Deployment's Workloads through the API, continuously, as a user would check a rollout.

``Availability`` follows one API watch of the namespace's Workloads and, after every event,
counts the Deployment's available replicas (controlled by it, not being deleted, ready by
``rollout.is_ready``); ``lowest`` is the fewest it ever saw. Events come in etcd's order, so
this is the count at every revision, not a sample.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from persys.client import ApiClient
from persys.deployments.rollout import is_ready
from persys.resources import Resource
from persys.resources.deployments import TEMPLATE_HASH_LABEL
from tests.support.eventually import eventually


def deployment(name: str, *, replicas: int = 3, image: str = "persys/busybox:local", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"image": image, "command": ["sleep", "3600"]}}, **spec}}


def controlled_by(workload: Resource, owner: Resource) -> bool:
    return any(ref.controller and ref.uid == owner.metadata.uid for ref in workload.metadata.ownerReferences)


class Availability:
    """The fewest available replicas of ``owner`` seen at any revision since ``start``."""

    def __init__(self, client: ApiClient, owner: Resource) -> None:
        self.client, self.owner = client, owner
        self.objects: dict[str, Resource] = {}
        self.lowest: int | None = None
        self.deleted: set[str] = set()  # names seen deleted or being deleted
        self.hashes: set[str] = set()

    def available(self) -> int:
        return sum(1 for w in self.objects.values()
                   if controlled_by(w, self.owner) and not w.metadata.deletionTimestamp and is_ready(w)[0])

    def _count(self) -> None:
        now = self.available()
        self.lowest = now if self.lowest is None else min(self.lowest, now)

    async def _follow(self, revision: str) -> None:
        async for item in self.client.watch("Workload", "default", resource_version=revision):
            if item.object is None:
                continue
            name = item.object.metadata.name
            if item.type == "DELETED":
                self.objects.pop(name, None)
                self.deleted.add(name)
            else:
                self.objects[name] = item.object
                if item.object.metadata.deletionTimestamp:
                    self.deleted.add(name)
                self.hashes.add(item.object.metadata.labels.get(TEMPLATE_HASH_LABEL, ""))
            self._count()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Availability]:
        items, revision = await self.client.list("Workload", "default")
        self.objects = {w.metadata.name: w for w in items}
        self._count()
        task = asyncio.create_task(self._follow(revision), name="availability-watch")
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def rolled_out(client: ApiClient, name: str, replicas: int, image: str) -> Resource | None:
    """The Deployment once every replica runs ``image`` and is available (none left of other revisions)."""
    obj = await client.get("Deployment", name)
    workloads = [w for w in (await client.list("Workload", "default"))[0]
                 if controlled_by(w, obj) and not w.metadata.deletionTimestamp]
    status = obj.status
    done = (status.get("observedGeneration") == obj.metadata.generation
            and status.get("updatedReplicas") == status.get("availableReplicas") == status.get("replicas") == replicas
            and len(workloads) == replicas and all(w.spec["image"] == image and is_ready(w)[0] for w in workloads))
    return obj if done else None


async def wait_rolled_out(client: ApiClient, name: str, replicas: int, image: str, timeout: float = 60) -> Resource:
    return await eventually(lambda: rolled_out(client, name, replicas, image), timeout=timeout,
                            what=f"deployment {name}: {replicas} available replicas of {image}")
