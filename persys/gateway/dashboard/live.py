"""Server-sent events for the dashboard: one stream per open page, fed by API watches.

A page lists or reads what it shows once, then opens an ``EventSource`` on a ``/ui/live/…`` route.
That route watches the API as the user from the revision the page was read at (``follow``: it
resumes a broken watch from the last revision it saw, with back-off; a revision etcd has compacted
is told to the page as ``stale``), turns events into HTML fragments rendered by the same templates,
and writes them as SSE events. No page polls a list. A comment line every ``KEEPALIVE`` seconds
keeps proxies from closing a quiet stream and lets a closed browser be noticed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from aiohttp import web

from persys.client.api import ApiClient, WatchItem
from persys.errors import Gone, PersysError, Unavailable
from persys.runtime.backoff import Backoff

KEEPALIVE = 15.0


class EventStream:
    """One ``text/event-stream`` response."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def open(self) -> EventStream:
        await self.response.prepare(self.request)
        await self.response.write(b"retry: 2000\n\n")  # how soon a browser reconnects after a break
        return self

    async def send(self, event: str, data: Any, *, revision: str = "") -> None:
        """One event; ``revision`` (the watch's) becomes its id, which a reconnecting browser sends back as
        ``Last-Event-ID`` so that the stream resumes where it broke instead of from the page's revision."""
        text = json.dumps(data, separators=(",", ":"))
        ident = f"id: {revision}\n" if revision else ""
        await self.response.write(f"event: {event}\n{ident}data: {text}\n\n".encode())

    async def keepalive(self) -> None:
        """Forever: a comment line every KEEPALIVE seconds (ends when the browser has gone)."""
        while True:
            await asyncio.sleep(KEEPALIVE)
            await self.response.write(b": keepalive\n\n")


async def follow(client: ApiClient, kind: str, namespace: str | None, revision: str, *,
                 selector: str = "") -> AsyncIterator[WatchItem]:
    """The watch events of ``kind`` after ``revision``, forever: a broken stream is resumed from the last revision
    seen. ``Gone`` (the revision was compacted) and the API's refusals (403) are raised to the caller."""
    backoff = Backoff(0.5, 10.0)
    while True:
        try:
            async for item in client.watch(kind, namespace, resource_version=revision, selector=selector):
                backoff.reset()
                if item.resource_version:
                    revision = item.resource_version
                if item.type != "BOOKMARK":
                    yield item
        except Unavailable:
            pass
        await asyncio.sleep(backoff.next())


async def run(stream: EventStream, *pumps: Awaitable[None]) -> web.StreamResponse:
    """Drive ``pumps`` (each sends its events) and the keep-alive until the browser leaves. A pump the API
    refuses (or whose revision is gone) tells the page so, as a ``stale`` or ``problem`` event, and stops."""
    async def guarded(pump: Awaitable[None]) -> None:
        try:
            await pump
        except Gone:
            await stream.send("stale", {"message": "this page's data is out of date: reload it"})
        except PersysError as e:
            await stream.send("problem", {"message": e.message})

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(stream.keepalive(), name="dashboard/keepalive")
            for pump in pumps:
                group.create_task(guarded(pump), name="dashboard/pump")
    except* ConnectionResetError:
        pass  # the browser went away
    return stream.response
