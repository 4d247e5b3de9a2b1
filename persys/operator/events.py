"""Events an operator records about its objects, through the API (``persys describe`` shows them).

The same (object, reason, message) recorded again bumps ``count`` and ``lastTimestamp`` of one
Event instead of adding another, as the built-in controllers' recorder does over etcd. Events
are best-effort: a failure to record one is logged and dropped, except ``NotLeader`` (a deposed
operator must notice it has lost its term, whatever it was writing).
"""

from __future__ import annotations

import hashlib
from typing import Any

from persys.client.api import ApiClient
from persys.errors import Conflict, NotFound, NotLeader, PersysError
from persys.observability.logging import get_logger
from persys.resources.kinds import EVENT
from persys.resources.model import ObjectMeta, Resource, now_iso

NORMAL, WARNING = "Normal", "Warning"

log = get_logger("operator.events")


def event_name(obj: Resource, reason: str, message: str) -> str:
    """A stable name per (object, reason, message), so repeats land on the same Event; a DNS-1123 label,
    as the API wants every name it is given (the controllers' ``name.digest`` goes to etcd directly)."""
    digest = hashlib.sha256(f"{obj.kind}|{obj.metadata.uid}|{reason}|{message}".encode()).hexdigest()[:12]
    return f"{obj.metadata.name[:50].replace('.', '-').rstrip('-')}-{digest}"


class EventRecorder:
    """Records Events about objects on behalf of one operator (``source``)."""

    def __init__(self, client: ApiClient, source: str) -> None:
        self.client = client
        self.source = source

    async def record(self, obj: Resource, type_: str, reason: str, message: str) -> None:
        """Create the Event or bump its count; never raises but NotLeader."""
        namespace = obj.metadata.namespace or "default"
        name = event_name(obj, reason, message)
        now = now_iso()
        try:
            try:
                await self.client.create(self._new(obj, namespace, name, type_, reason, message, now))
            except Conflict:
                await self._bump(namespace, name, now)
        except NotLeader:
            raise
        except PersysError as e:
            log.warning("could not record event", reason=reason, object=str(obj.key), error=e.message)

    async def _bump(self, namespace: str, name: str, now: str) -> None:
        for _ in range(3):  # CAS on the version read: a concurrent bump is read again, never lost
            try:
                event = await self.client.get(EVENT.kind, name, namespace)
            except NotFound:
                return  # expired meanwhile; the next record creates it again
            event.spec["count"] = int(event.spec.get("count", 1)) + 1
            event.spec["lastTimestamp"] = now
            try:
                await self.client.apply(event)
                return
            except Conflict:
                continue

    def _new(self, obj: Resource, namespace: str, name: str, type_: str, reason: str, message: str,
             now: str) -> Resource:
        spec: dict[str, Any] = {
            "involvedObject": {"kind": obj.kind, "namespace": obj.metadata.namespace, "name": obj.metadata.name,
                               "uid": obj.metadata.uid},
            "type": type_, "reason": reason, "message": message[:1024], "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "source": self.source,
        }
        return Resource(kind=EVENT.kind, metadata=ObjectMeta(name=name, namespace=namespace), spec=spec)
