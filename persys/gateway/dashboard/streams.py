"""The dashboard's live streams (server-sent events), each fed by API watches as the user.

- ``/ui/live/list/{group}/{plural}``: the rows of one list page. The page says what it holds (its
  first and last keys, whether it is the first or last page, its filters and revision); a change to
  an object in that range sends the row re-rendered (``row``), a delete sends ``gone``.
- ``/ui/live/object/{group}/{plural}/{namespace}/{name}``: one object's panels (``html``) and its new
  Events (``event``).
  A Deployment's also re-renders its replicas (``html``, target ``replicas``) from a list and a watch
  of its Workloads.
- ``/ui/live/overview``: workloads by phase, failing workloads and nodes Ready/NotReady from one list
  and then a watch of each kind (``html``, at most once a second), and the reconciler's statistics
  every ``STATS_SECONDS`` for the chart (``sample``).
- ``/ui/live/nodes``: the nodes page (``html``, at most once a second), from a list and a watch of
  Nodes and of Workloads.
- ``/ui/live/logs/{namespace}/{name}``: a workload's log, followed (``line``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from persys.client.api import ApiClient
from persys.controllers.conditions import node_ready
from persys.errors import BadRequest
from persys.gateway.dashboard import views
from persys.gateway.dashboard.live import EventStream, follow, run
from persys.gateway.dashboard.pages import kind_at, permissions, replica_selector
from persys.gateway.dashboard.site import Ui, namespace_arg
from persys.resources import Resource
from persys.resources.deployments import progress

STATS_SECONDS = 5.0
CENSUS_SECONDS = 1.0  # the overview's counts, the nodes page and a Deployment's replicas: at most this often
Render = Callable[[], list[tuple[str, str]]]  # (target, html) of each panel to send


async def mirror(client: ApiClient, kind: str, namespace: str | None, apply: Callable[[str, Resource], None],
                 changed: asyncio.Event, *, selector: str = "", listed: asyncio.Event | None = None) -> None:
    """Keep a copy of a collection: list it, then follow its watch; ``apply`` each object, ``changed`` after.
    ``listed`` is set once the first list is applied."""
    found, revision = await client.list(kind, namespace, selector)
    for obj in found:
        apply("ADDED", obj)
    if listed is not None:
        listed.set()
    changed.set()
    async for item in follow(client, kind, namespace, revision, selector=selector):
        if item.object is not None:
            apply(item.type, item.object)
            changed.set()


def keep(objects: dict[views.Key, Resource]) -> Callable[[str, Resource], None]:
    """An ``apply`` for ``mirror`` that keeps the objects by key."""
    def apply(event: str, obj: Resource) -> None:
        if event == "DELETED":
            objects.pop(views.key_of(obj), None)
        else:
            objects[views.key_of(obj)] = obj
    return apply


async def publish(stream: EventStream, changed: asyncio.Event, render: Render, *,
                  listed: tuple[asyncio.Event, ...] = ()) -> None:
    """Send the panels ``render`` makes whenever ``changed`` is set, at most once every CENSUS_SECONDS; the
    first time once every mirror of ``listed`` has its first list (a page made of two collections never
    shows one of them empty because its list came second)."""
    for event in listed:
        await event.wait()
    while True:
        await changed.wait()
        changed.clear()
        for target, html in render():
            await stream.send("html", {"target": target, "html": html})
        await asyncio.sleep(CENSUS_SECONDS)


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
    workload, deployment = views.has_logs(kind), views.is_deployment(kind)
    may = await permissions(client, namespace) if workload else {}
    latest = [await client.get(kind.kind, name, namespace)] if deployment else []
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
            elif deployment:
                latest[0] = obj
                replicas_changed.set()  # which replicas are of the current revision may have changed
                panels = [("summary", ui.fragment("deployment_summary", obj, progress(obj))),
                          ("history", ui.fragment("revision_history", obj))]
            else:
                panels = [("summary", ui.fragment("object_summary", obj, views.summary(kind, obj)))]
            for target, html in [*panels, ("body", ui.fragment("object_body", obj))]:
                await stream.send("html", {"target": target, "html": html})

    replicas_changed = asyncio.Event()
    workloads: dict[views.Key, Resource] = {}

    def replicas() -> list[tuple[str, str]]:
        return [("replicas", ui.fragment("replica_table", views.replicas(latest[0], workloads.values())))]

    async def watch_events() -> None:
        async for item in follow(client, "Event", namespace or None, revision):
            event = item.object
            involved = (event.spec.get("involvedObject") or {}) if event is not None else {}
            if item.type == "ADDED" and event is not None and involved.get("name") == name \
                    and str(involved.get("kind", kind.kind)).lower() == kind.kind.lower():
                html = ui.fragment("event_row", event)
                await stream.send("event", {"key": views.key_of(event), "html": html})

    if not deployment:
        return await run(stream, watch_object(), watch_events())
    selector = replica_selector(latest[0])
    return await run(stream, watch_object(), watch_events(),
                     mirror(client, "Workload", namespace, keep(workloads), replicas_changed, selector=selector),
                     publish(stream, replicas_changed, replicas))


async def overview(ui: Ui, request: web.Request) -> web.StreamResponse:
    claims = await ui.caller(request)
    client = await ui.client(claims)
    stream = await EventStream(request).open()
    census = views.Census()
    changed = asyncio.Event()

    def census_html() -> list[tuple[str, str]]:
        return [("census", ui.fragment("census", census))]

    listed = (asyncio.Event(), asyncio.Event())
    return await run(stream, mirror(client, "Workload", None, census.workload, changed, listed=listed[0]),
                     mirror(client, "Node", None, lambda event, obj: census.node(event, obj, node_ready(obj)), changed,
                            listed=listed[1]),
                     publish(stream, changed, census_html, listed=listed), stats(client, stream))


async def nodes(ui: Ui, request: web.Request) -> web.StreamResponse:
    claims = await ui.caller(request)
    client = await ui.client(claims)
    stream = await EventStream(request).open()
    found: dict[views.Key, Resource] = {}
    placed: dict[views.Key, Resource] = {}
    changed = asyncio.Event()

    def nodes_html() -> list[tuple[str, str]]:
        usage = views.node_usage([(n, node_ready(n)) for n in found.values()], placed.values())
        return [("nodes", ui.fragment("node_list", usage, views.NODE_WORKLOADS_SHOWN))]

    listed = (asyncio.Event(), asyncio.Event())
    return await run(stream, mirror(client, "Node", None, keep(found), changed, listed=listed[0]),
                     mirror(client, "Workload", None, keep(placed), changed, listed=listed[1]),
                     publish(stream, changed, nodes_html, listed=listed))


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

