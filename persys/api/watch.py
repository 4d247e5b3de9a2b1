"""Watch streams: ``?watch=true`` answers with ndjson events, from the server's watch cache
(``persys.api.watchcache``) or, for a revision older than the cache holds, from a watch of its own.

A watch starts after ``resourceVersion`` (or "now" without one; 400 unless it is a number etcd's
int64 revisions can follow), answers 410 before streaming when a revision older than the cache is
compacted, sends a BOOKMARK with the last delivered revision after a
quiet interval (so clients can resume cheaply and notice dead connections), and ends with an
ERROR line carrying a 410 Status when etcd compacts away from under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

from aiohttp import web

from persys.api.context import api_context
from persys.api.watchcache import Cached, line
from persys.errors import BadRequest, PersysError
from persys.resources import Kind, Selector

_END = object()
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit() also takes '１２' and '²'
MAX_REVISION = 2**63 - 2  # etcd revisions are int64, and the watch starts at the next one


def _bookmark(kind: Kind, revision: int) -> bytes:
    return line("BOOKMARK", {"kind": kind.kind, "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(revision)}})


def _given_revision(request: web.Request) -> int | None:
    """The revision the watch starts after (None: now); 400 unless etcd's int64 revisions can follow it."""
    given = request.query.get("resourceVersion", "")
    if not given:
        return None
    if not _DIGITS.fullmatch(given) or int(given) > MAX_REVISION:
        raise BadRequest(f"resourceVersion must be a number from 0 to {MAX_REVISION}, not {given!r}")
    return int(given)


async def _from_etcd(request: web.Request, kind: Kind, namespace: str | None, selector: Selector,
                     after: int | None) -> tuple[int, asyncio.Queue[object], asyncio.Task[None]]:
    """A watch of its own on etcd (older than the cache holds): (start revision, its queue, its pump).
    Gone (410) when ``after`` has been compacted."""
    etcd, store = api_context(request).etcd, api_context(request).store
    if after is None:
        after = await etcd.revision()
    else:
        await etcd.check_revision(after + 1)
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1000)
    source = store.watch(kind.kind, namespace, revision=after, selector=selector)
    return after, queue, asyncio.create_task(_pump(source, kind, queue), name=f"watch-{kind.plural}")


async def _pump(source: Any, kind: Kind, queue: asyncio.Queue[object]) -> None:
    """Move store events into ``queue`` as lines; then the error or the end marker (not when cancelled)."""
    try:
        async for event in source:
            await queue.put(Cached(event.revision, line(event.type, kind.to_wire(event.object)), "", {}))
    except PersysError as e:
        await queue.put(e)
        return
    await queue.put(_END)


async def watch_stream(request: web.Request, kind: Kind, namespace: str | None,
                       selector: Selector) -> web.StreamResponse:
    ctx = api_context(request)
    after = _given_revision(request)
    cache = ctx.watch_caches.of(kind)
    sub = await cache.subscribe(after, namespace, selector)
    pump: asyncio.Task[None] | None = None
    if sub is not None:
        revision, queue = sub.after, sub.queue
    else:
        revision, queue, pump = await _from_etcd(request, kind, namespace, selector, after)  # type: ignore[assignment]
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    me = asyncio.current_task()
    if me is not None:
        ctx.watches.add(me)
    try:
        await response.prepare(request)
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), ctx.bookmark_interval)
            except TimeoutError:
                await response.write(_bookmark(kind, revision))
                continue
            if item is _END:
                break
            if isinstance(item, PersysError):
                await response.write(line("ERROR", item.to_status()))
                break
            assert isinstance(item, Cached)
            revision = item.revision
            await response.write(item.line)
    except ConnectionResetError:
        pass  # the client went away
    finally:
        if me is not None:
            ctx.watches.discard(me)
        if sub is not None:
            cache.unsubscribe(sub)
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump  # cancelling the pump closes the store's watch inside it
    with contextlib.suppress(Exception):
        await response.write_eof()
    return response
