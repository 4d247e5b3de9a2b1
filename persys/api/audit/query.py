"""``GET /audit/events``: admins read this API server's audit trail, filtered, oldest first.

Filters (query parameters, each optional): ``name`` (objectRef.name), ``user`` (the user or the
user acted for), ``verb``, ``namespace``, ``resource`` (a plural), ``since`` (a duration such as
``90s``, ``15m``, ``1h30m``, ``2d``, or an RFC 3339 time) and ``limit`` (the newest N matching
events, default 500). An unknown or malformed parameter is a 400 naming it. The events still
queued for the disk are written before the files are read, so a client sees its own requests.
Each API server keeps its own trail: with several, ask each one.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from persys.api import openapi
from persys.api.auth import ADMINS, allow
from persys.api.context import api_context
from persys.errors import BadRequest, NotFound

DEFAULT_LIMIT = 500
MAX_LIMIT = 100_000
DRAIN_TIMEOUT = 2.0
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
PARAMETERS = {
    "name": "only events about objects of this name",
    "user": "only events of this user (or acting for this user)",
    "verb": "only this verb: create, update, patch, delete, get, list, watch, …",
    "namespace": "only events about objects in this namespace",
    "resource": "only events about this resource (a plural: workloads, secrets, …)",
    "since": "only events received within this duration (90s, 15m, 1h30m, 2d) or after this RFC 3339 time",
    "limit": f"at most this many events, the newest (1-{MAX_LIMIT}, default {DEFAULT_LIMIT})",
}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The moment ``text`` names: a duration back from ``now`` (``1h30m``) or an RFC 3339 time; ValueError."""
    now = now or datetime.now(UTC)
    text = text.strip()
    if text and _DURATION.sub("", text) == "":
        seconds = sum(float(amount) * _UNITS[unit] for amount, unit in _DURATION.findall(text))
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (90s, 15m, 1h30m, 2d) nor an RFC 3339 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Filter:
    """Which events a reader wants."""

    name: str = ""
    user: str = ""
    verb: str = ""
    namespace: str = ""
    resource: str = ""
    since: datetime | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filter:
        """The filter a request's query asks for; BadRequest naming an unknown or malformed parameter."""
        unknown = sorted(set(query) - set(PARAMETERS))
        if unknown:
            raise BadRequest(f"unknown query parameter {unknown[0]!r}; known: {', '.join(PARAMETERS)}")
        since = None
        if query.get("since"):
            try:
                since = parse_since(query["since"])
            except ValueError as e:
                raise BadRequest(f"since: {e}") from None
        raw_limit = query.get("limit", str(DEFAULT_LIMIT))
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise BadRequest(f"limit must be an integer 1-{MAX_LIMIT}, not {raw_limit!r}")
        return cls(query.get("name", ""), query.get("user", ""), query.get("verb", ""), query.get("namespace", ""),
                   query.get("resource", ""), since, int(raw_limit))

    def matches(self, event: dict[str, Any]) -> bool:
        ref = event.get("objectRef") or {}
        users = {(event.get("user") or {}).get("username"), (event.get("impersonatedUser") or {}).get("username")}
        checks = ((self.name, ref.get("name")), (self.verb, event.get("verb")),
                  (self.namespace, ref.get("namespace")), (self.resource, ref.get("resource")))
        if any(wanted and wanted != found for wanted, found in checks) or (self.user and self.user not in users):
            return False
        return self.since is None or _received(event) >= self.since


def _received(event: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(event.get("requestReceivedTimestamp", "")).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def read_trail(files: Iterable[Path], wanted: Filter) -> list[dict[str, Any]]:
    """The newest ``wanted.limit`` matching events of ``files`` (oldest file first), oldest first.

    A file last written before ``since`` holds nothing newer and is skipped unread; a line that is not
    JSON (a partial line of a crash) is skipped."""
    found: deque[dict[str, Any]] = deque(maxlen=wanted.limit)
    for path in files:
        try:
            if wanted.since is not None and datetime.fromtimestamp(path.stat().st_mtime, UTC) < wanted.since:
                continue
            with path.open("rb") as lines:
                for line in lines:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict) and wanted.matches(event):
                        found.append(event)
        except FileNotFoundError:
            continue  # rotated away while we read
    return list(found)


@allow(ADMINS)
@openapi.query(**PARAMETERS)
async def events(request: web.Request) -> web.Response:
    """This API server's audit events, oldest first (admins only)."""
    wanted = Filter.from_query(request.query)
    auditor = api_context(request).audit
    if auditor is None:
        raise NotFound("this API server keeps no audit trail")
    await auditor.file.drained(DRAIN_TIMEOUT)
    items = await asyncio.to_thread(read_trail, auditor.file.files(), wanted)
    return web.json_response({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/audit/events", events)
