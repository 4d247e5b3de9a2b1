"""The dashboard's live streams (server-sent events), each fed by API watches as the user.

- ``/ui/live/list/{group}/{plural}``: the rows of one list page. The page says what it holds (its
  first and last keys, whether it is the first or last page, its filters and revision); a change to
  an object in that range sends the row re-rendered (``row``), a delete sends ``gone``.
- ``/ui/live/object/{group}/{plural}/{namespace}/{name}``: one object's panels (``html``) and its new
  Events (``event``).
- ``/ui/live/overview``: workloads by phase, failing workloads and nodes Ready/NotReady from one list
  and then a watch of each kind (``html``, at most once a second), and the reconciler's statistics
  every ``STATS_SECONDS`` for the chart (``sample``).
- ``/ui/live/logs/{namespace}/{name}``: a workload's log, followed (``line``).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from persys.client.api import ApiClient
from persys.controllers.conditions import node_ready
from persys.errors import BadRequest
from persys.gateway.dashboard import views
from persys.gateway.dashboard.live import EventStream, follow, run
from persys.gateway.dashboard.pages import kind_at, permissions
from persys.gateway.dashboard.site import Ui, namespace_arg

STATS_SECONDS = 5.0
CENSUS_SECONDS = 1.0  # the overview's counts are sent at most this often


async def list_rows(ui: Ui, request: web.Request) -> web.StreamResponse:
    claims = await ui.caller(request)
    client = await ui.client(claims)
    kind = await kind_at(client, request.match_info["group"], request.match_info["plural"])
    query = request.query
    namespace = namespace_arg(request) if kind.namespaced else ""
    search, selector = query.get("search", ""), query.get("labelSelector", "")
    revision = request.headers.get("Last-Event-ID") or query.get("rv", "")  # a reconnect resumes where it broke
    low, high = query.get("low", ""), query.get("high", "")
    first_page, last_page = query.get("first") == "1", query.get("last") == "1"
    if not revision.isdigit():
        raise BadRequest(f"rv (or Last-Event-ID): must be the list's resourceVersion, not {revision!r}")
    stream = await EventStream(request).open()

    async def pump() -> None:
        async for item in follow(client, kind.kind, namespace or None, revision, selector=selector):
            obj = item.object
            if obj is None or not views.matches(obj, search):
                continue
            key = views.key_of(obj)
            if not views.belongs(key, low, high, first_page=first_page, last_page=last_page):
                continue
            if item.type == "DELETED":
                await stream.send("gone", {"key": key}, revision=item.resource_version)
            else:
                html = ui.fragment("row_html", views.row(kind, obj), views.headers(kind), views.has_logs(kind))
                await stream.send("row", {"key": key, "html": html}, revision=item.resource_version)

    return await run(stream, pump())


async def object_panels(ui: Ui, request: web.Request) -> web.StreamResponse:
    claims = await ui.caller(request)
    client = await ui.client(claims)
    kind = await kind_at(client, request.match_info["group"], request.match_info["plural"])
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    namespace = namespace if kind.namespaced else ""
    revision = request.query.get("rv", "")
    if not revision.isdigit():
        raise BadRequest(f"rv: must be the object's resourceVersion, not {revision!r}")
    workload = views.has_logs(kind)
    may = await permissions(client, namespace) if workload else {}
    stream = await EventStream(request).open()

    async def watch_object() -> None:
        async for item in follow(client, kind.kind, namespace or None, revision):
            obj = item.object
            if obj is None or obj.metadata.name != name:
                continue
            if item.type == "DELETED":
                await stream.send("gone", {"key": views.key_of(obj)})
                continue
            if workload:
                panels = [("summary", ui.fragment("workload_summary", obj)),
                          ("actions", ui.fragment("workload_actions", obj, may))]
            else:
                panels = [("summary", ui.fragment("object_summary", obj, views.summary(kind, obj)))]
            for target, html in [*panels, ("body", ui.fragment("object_body", obj))]:
                await stream.send("html", {"target": target, "html": html})

    async def watch_events() -> None:
        async for item in follow(client, "Event", namespace or None, revision):
            event = item.object
            involved = (event.spec.get("involvedObject") or {}) if event is not None else {}
            if item.type == "ADDED" and event is not None and involved.get("name") == name \
                    and str(involved.get("kind", kind.kind)).lower() == kind.kind.lower():
                html = ui.fragment("event_row", event)
                await stream.send("event", {"key": views.key_of(event), "html": html})

    return await run(stream, watch_object(), watch_events())


async def overview(ui: Ui, request: web.Request) -> web.StreamResponse:
    claims = await ui.caller(request)
    client = await ui.client(claims)
    stream = await EventStream(request).open()
    census = views.Census()
    changed = asyncio.Event()

    async def workloads() -> None:
        found, revision = await client.list("Workload", None)
        for obj in found:
            census.workload("ADDED", obj)
        changed.set()
        async for item in follow(client, "Workload", None, revision):
            if item.object is not None:
                census.workload(item.type, item.object)
                changed.set()

    async def nodes() -> None:
        found, revision = await client.list("Node", None)
        for obj in found:
            census.node("ADDED", obj, node_ready(obj))
        changed.set()
        async for item in follow(client, "Node", None, revision):
            if item.object is not None:
                census.node(item.type, item.object, node_ready(item.object))
                changed.set()

    async def publish() -> None:
        while True:
            await changed.wait()
            changed.clear()
            await stream.send("html", {"target": "census", "html": ui.fragment("census", census)})
            await asyncio.sleep(CENSUS_SECONDS)

    return await run(stream, workloads(), nodes(), publish(), stats(client, stream))


async def stats(client: ApiClient, stream: EventStream) -> None:
    while True:
        _, data, _ = await client.request("GET", "/reconciliation/stats")
        await stream.send("sample", {"time": time.time(), **views.stats_sample(data if isinstance(data, dict) else {})})
        await asyncio.sleep(STATS_SECONDS)


async def logs(ui: Ui, request: web.Request) -> web.StreamResponse:
    claims = await ui.caller(request)
    client = await ui.client(claims)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    path = client.path("Workload", namespace, name, "log")
    stream = await EventStream(request).open()

    async def lines() -> None:
        pending = ""
        async for chunk in client.stream("GET", path, params={"follow": "true", "tailLines": "0"}):
            pending += chunk.decode(errors="replace")
            *complete, pending = pending.split("\n")
            for line in complete:
                await stream.send("line", {"text": line})

    return await run(stream, lines())

