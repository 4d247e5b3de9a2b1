"""Watch streams: ``?watch=true`` answers with ndjson events from ``ObjectStore.watch``.

A watch starts after ``resourceVersion`` (or "now" without one; 400 unless it is a number etcd's
int64 revisions can follow), answers 410 before streaming
when that revision is compacted, sends a BOOKMARK with the last delivered revision after a
quiet interval (so clients can resume cheaply and notice dead connections), and ends with an
ERROR line carrying a 410 Status when etcd compacts away from under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

from aiohttp import web

from persys.api.context import api_context
from persys.errors import BadRequest, PersysError
from persys.resources import Kind, Selector
from persys.store import WatchEvent

_END = object()
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit() also takes '１２' and '²'
MAX_REVISION = 2**63 - 2  # etcd revisions are int64, and the watch starts at the next one


def _line(kind_of_event: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind_of_event, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _bookmark(kind: Kind, revision: int) -> bytes:
    return _line("BOOKMARK", {"kind": kind.kind, "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(revision)}})


async def _start_revision(request: web.Request) -> int:
    """The revision the watch starts after; Gone (410) when it has been compacted."""
    etcd = api_context(request).etcd
    given = request.query.get("resourceVersion", "")
    if not given:
        return await etcd.revision()
    if not _DIGITS.fullmatch(given) or int(given) > MAX_REVISION:
        raise BadRequest(f"resourceVersion must be a number from 0 to {MAX_REVISION}, not {given!r}")
    revision = int(given)
    await etcd.check_revision(revision + 1)
    return revision


async def _pump(source: Any, queue: asyncio.Queue[object]) -> None:
    """Move store events into ``queue``; then the error or the end marker (not when cancelled)."""
    try:
        async for event in source:
            await queue.put(event)
    except PersysError as e:
        await queue.put(e)
        return
    await queue.put(_END)


async def watch_stream(request: web.Request, kind: Kind, namespace: str | None,
                       selector: Selector) -> web.StreamResponse:
    ctx = api_context(request)
    revision = await _start_revision(request)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1000)
    source = ctx.store.watch(kind.kind, namespace, revision=revision, selector=selector)
    pump = asyncio.create_task(_pump(source, queue), name=f"watch-{kind.plural}")
    me = asyncio.current_task()
    if me is not None:
        ctx.watches.add(me)
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), ctx.bookmark_interval)
            except TimeoutError:
                await response.write(_bookmark(kind, revision))
                continue
            if item is _END:
                break
            if isinstance(item, PersysError):
                await response.write(_line("ERROR", item.to_status()))
                break
            assert isinstance(item, WatchEvent)
            revision = item.revision
            await response.write(_line(item.type, kind.to_wire(item.object)))
    except ConnectionResetError:
        pass  # the client went away
    finally:
        if me is not None:
            ctx.watches.discard(me)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump  # cancelling the pump closes the store's watch inside it
    with contextlib.suppress(Exception):
        await response.write_eof()
    return response
