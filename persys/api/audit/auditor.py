"""The audit trail of one API server: the middleware that records an event per request, and its sinks.

The ``audit`` middleware sits outside the error middleware, so it sees every answer as the
client does (a refused request's ``Status`` too). It decides the level once the request is
answered, when the auth middleware has said who asked: the policy's level for that user, verb
and object (``persys.api.audit.policy``). At None nothing is recorded; at Metadata the event
says who did what to which object with what result; at Request it adds the body sent, at
RequestResponse the body answered. One event per request, at stage ``ResponseComplete``; a
watch also gets one at ``ResponseStarted`` when its stream opens, since it may stay open for
hours. Every answer on the mTLS listener carries its event's id in ``Audit-ID``.

Recording never waits: the event is serialized once and offered to each sink's bounded queue
(``FileSink``, and ``LokiSink`` with ``--audit-loki-url``), whose writer tasks run under the API
server's supervisor (``services``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from persys.api.audit.event import Pending, attributes, event, request_info
from persys.api.audit.filesink import FileSink
from persys.api.audit.loki import Entry, LokiSettings, LokiSink
from persys.api.audit.policy import Level, Policy, default_policy
from persys.api.auth import Handler
from persys.api.context import api_context
from persys.errors import PersysError
from persys.httpedge import decode_json
from persys.observability.logging import get_logger
from persys.runtime.supervisor import Named, Service

AUDIT_HEADER = "Audit-ID"
PENDING = web.RequestKey("persys_audit", Pending)

log = get_logger("audit")


@dataclass(frozen=True)
class AuditSettings:
    """Where the trail goes and what it records (``persys server`` / ``persys up`` ``--audit-*`` flags)."""

    directory: Path
    policy: Policy
    max_bytes: int = 100 * 1024 * 1024
    max_files: int = 5
    queue_size: int = 10_000
    loki: LokiSettings | None = None


class Auditor:
    """Decides each request's level and hands its event to the sinks."""

    def __init__(self, settings: AuditSettings) -> None:
        self.settings = settings
        self.policy = settings.policy
        self.file = FileSink(settings.directory, max_bytes=settings.max_bytes, max_files=settings.max_files,
                             queue_size=settings.queue_size)
        self.loki = LokiSink(settings.loki) if settings.loki is not None else None

    @classmethod
    def default(cls, directory: Path) -> Auditor:
        return cls(AuditSettings(directory, default_policy()))

    def set_cluster(self, cluster_id: str) -> None:
        """Label the events sent to Loki with the cluster's id (known once the server has claimed it)."""
        if self.loki is not None and cluster_id:
            self.loki.labels["cluster"] = cluster_id

    def services(self) -> list[Service]:
        sinks: list[FileSink | LokiSink] = [self.file, *([self.loki] if self.loki else [])]
        return [Named(sink.name, sink.run) for sink in sinks]

    def record(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, separators=(",", ":"), default=str)
        self.file.offer(line)
        if self.loki is not None:
            self.loki.offer(Entry(time.time_ns(), "read" if data["verb"] in ("get", "list", "watch") else "write",
                                  line))

    def decide(self, request: web.Request, pending: Pending) -> None:
        """Fill in the request's info and level (once the auth middleware has said who asked)."""
        if pending.info is None:
            pending.info = request_info(request, api_context(request).registry)
            pending.level = self.policy.level(attributes(request, pending.info))


@web.middleware
async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
    auditor = api_context(request).audit
    if auditor is None or not request.secure:  # the plain listener serves only health, version and metrics
        return await handler(request)
    pending = request[PENDING] = Pending()
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
    finally:
        if response is None:  # cancelled (the client went away) or an error no middleware answered
            _record_safely(auditor, request, pending, 200 if pending.started else (499 if _cancelled() else 500))
    try:
        auditor.decide(request, pending)
        if pending.level != Level.NONE:
            auditor.record(await _complete(request, pending, response))
    except Exception:  # the trail must never turn an answer into a 500
        auditor.file.drops.drop("internal_error")
        log.exception("audit event failed", path=request.path)
    return response


def _record_safely(auditor: Auditor, request: web.Request, pending: Pending, code: int) -> None:
    try:
        auditor.decide(request, pending)
        if pending.level != Level.NONE:
            auditor.record(event(request, pending, "ResponseComplete", code))
    except Exception:
        auditor.file.drops.drop("internal_error")
        log.exception("audit event failed", path=request.path)


def _cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _complete(request: web.Request, pending: Pending, response: web.StreamResponse) -> dict[str, Any]:
    body = response.body if isinstance(response, web.Response) else None
    answer = _json(body) if isinstance(body, bytes) and response.content_type == "application/json" else None
    message = str(answer.get("message", "")) if isinstance(answer, dict) and response.status >= 400 else ""
    sent = await _request_body(request) if pending.level.rank >= Level.REQUEST.rank else None
    return event(request, pending, "ResponseComplete", response.status, message=message, request_object=sent,
                 response_object=answer if response.status < 400 else None)


async def _request_body(request: web.Request) -> Any:
    """The JSON the client sent (None when there was none, or it was not JSON)."""
    if not request.can_read_body and not request.body_exists:
        return None
    try:
        return _json(await request.read())
    except (web.HTTPException, ConnectionError):
        return None


def _json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return decode_json(raw)
    except PersysError:
        return None


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the ``Audit-ID`` header, and a watch's ``ResponseStarted`` event."""
    pending = request.get(PENDING)
    auditor = api_context(request).audit
    if not isinstance(pending, Pending) or auditor is None:
        return
    response.headers[AUDIT_HEADER] = pending.audit_id
    if isinstance(response, web.Response):
        return
    try:
        auditor.decide(request, pending)
        if pending.info is not None and pending.info.verb == "watch" and pending.level != Level.NONE:
            pending.started = True
            auditor.record(event(request, pending, "ResponseStarted", response.status))
    except Exception:
        auditor.file.drops.drop("internal_error")
        log.exception("audit event failed", path=request.path)
