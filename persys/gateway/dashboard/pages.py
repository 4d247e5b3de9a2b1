"""The dashboard's pages: overview, lists (workloads and every custom kind), an object, nodes, kinds.

Each page is read through the API as the user once, rendered on the server, and then kept current
by the stream its ``data-live`` attribute names (``persys.gateway.dashboard.streams``). Lists read
one page with the API's ``?limit&continue`` (``views.page``), so a list of any size costs one page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from persys.client.api import ApiClient
from persys.controllers.conditions import node_ready
from persys.errors import Cause, Invalid, NotFound, PersysError
from persys.gateway.dashboard import views
from persys.gateway.dashboard.site import Ui, namespace_arg, page_errors
from persys.resources import Kind, Resource
from persys.resources.deployments import progress
from persys.resources.registry import CORE_GROUP

LOG_TAIL = 200


async def kind_at(client: ApiClient, group: str, plural: str) -> Kind:
    """The kind served at ``/apis/{group}/…/{plural}``, asking discovery when the client does not know it."""
    for attempt in range(2):
        for kind in client.registry.all():
            if kind.group == group and kind.plural == plural:
                return kind
        if attempt == 0:
            await client.discover()
    raise NotFound(f"no kind {plural!r} in group {group!r} is served (see /ui/kinds)")


async def fetch_page(client: ApiClient, kind: Kind, namespace: str, selector: str,
                     cursor: views.Cursor, search: str) -> views.Page:
    path = client.path(kind.kind, namespace or None)

    async def fetch(limit: int, token: str) -> tuple[list[Resource], str, str]:
        params = {"limit": str(limit), **({"labelSelector": selector} if selector else {}),
                  **({"nameContains": search} if search else {}), **({"continue": token} if token else {})}
        try:
            _, data, _ = await client.request("GET", path, params=params)
        except Invalid as e:  # the one parameter of a list the user typed
            raise Invalid(f"labelSelector: {e.message}", causes=[Cause("labelSelector", e.message)]) from None
        items = [kind.from_wire(item, copy=False) for item in data.get("items", [])]
        return items, str(data["metadata"].get("continue") or ""), str(data["metadata"]["resourceVersion"])

    return await views.page(fetch, cursor)


async def overview(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    return ui.render("overview.html", claims, nav="overview")


async def workloads(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    client = await ui.client(claims)
    return await _list(ui, request, claims, client.registry.get("Workload"), "/ui/workloads")


async def deployments(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    client = await ui.client(claims)
    return await _list(ui, request, claims, client.registry.get("Deployment"), "/ui/deployments")


async def custom_list(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    client = await ui.client(claims)
    group, plural = request.match_info["group"], request.match_info["plural"]
    try:
        kind = await kind_at(client, group, plural)
    except PersysError as e:
        return page_errors(ui, claims, e)
    return await _list(ui, request, claims, kind, f"/ui/kinds/{group}/{plural}")


async def _list(ui: Ui, request: web.Request, claims: Any, kind: Kind, base: str) -> web.Response:
    client = await ui.client(claims)
    search = request.query.get("search", "").strip()
    selector = request.query.get("labelSelector", "").strip()
    try:
        namespace = namespace_arg(request) if kind.namespaced else ""
        cursor = views.Cursor.decode(request.query.get("continue", ""))
        found = await fetch_page(client, kind, namespace, selector, cursor, search)
    except PersysError as e:
        return page_errors(ui, claims, e)
    rows = [views.row(kind, obj) for obj in found.items]
    filters = {k: v for k, v in (("namespace", namespace), ("labelSelector", selector), ("search", search)) if v}
    first_page, last_page = not request.query.get("continue"), found.following is None
    live = {**filters, "rv": found.revision, "first": "1" if first_page else "0", "last": "1" if last_page else "0",
            "low": rows[0].key if rows else "", "high": rows[-1].key if rows else ""}
    following = f"{base}?{urlencode({**filters, 'continue': found.following.encode()})}" if found.following else ""
    nav = "workloads" if views.has_logs(kind) else "deployments" if views.is_deployment(kind) else "kinds"
    return ui.render("list.html", claims, nav=nav, kind=kind,
                     headers=views.headers(kind), logs_column=views.has_logs(kind), rows=rows, filters=filters,
                     base=base, page_size=views.PAGE_SIZE,
                     first=f"{base}?{urlencode(filters)}" if not first_page else "", following=following,
                     live=f"/ui/live/list/{kind.group}/{kind.plural}?{urlencode(live)}")


async def workload(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    client = await ui.client(claims)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        obj = await client.get("Workload", name, namespace)
        events = await related_events(client, obj)
        may = await permissions(client, namespace)
    except PersysError as e:
        return page_errors(ui, claims, e)
    logs, logs_problem = "", ""
    try:
        _, text, _ = await client.request("GET", client.path("Workload", namespace, name, "log"),
                                          params={"tailLines": str(LOG_TAIL)})
        logs = str(text or "")
    except PersysError as e:
        logs_problem = e.message
    return ui.render("workload.html", claims, nav="workloads", obj=obj, events=events, may=may, logs=logs,
                     logs_problem=logs_problem, failing=views.failing(obj),
                     live=f"/ui/live/object/{CORE_GROUP}/workloads/{namespace}/{name}?"
                          f"{urlencode({'rv': obj.metadata.resourceVersion})}",
                     follow=f"/ui/live/logs/{namespace}/{name}")


async def deployment(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    client = await ui.client(claims)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        obj = await client.get("Deployment", name, namespace)
        workloads, _ = await client.list("Workload", namespace, replica_selector(obj))
        events = await related_events(client, obj)
    except PersysError as e:
        return page_errors(ui, claims, e)
    return ui.render("deployment.html", claims, nav="deployments", obj=obj, rollout=progress(obj),
                     replicas=views.replicas(obj, workloads), events=events,
                     live=f"/ui/live/object/{CORE_GROUP}/deployments/{namespace}/{name}?"
                          f"{urlencode({'rv': obj.metadata.resourceVersion})}")


def replica_selector(deployment: Resource) -> str:
    """The label selector of a Deployment's Workloads (``spec.selector.matchLabels``), as ``-l`` writes it."""
    labels = (deployment.spec.get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


async def custom_object(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    client = await ui.client(claims)
    group, plural = request.match_info["group"], request.match_info["plural"]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        kind = await kind_at(client, group, plural)
        obj = await client.get(kind.kind, name, namespace if kind.namespaced else "")
        events = await related_events(client, obj)
    except PersysError as e:
        return page_errors(ui, claims, e)
    return ui.render("object.html", claims, nav="kinds", kind=kind, obj=obj, events=events,
                     columns=views.summary(kind, obj),
                     live=f"/ui/live/object/{group}/{plural}/{namespace}/{name}?"
                          f"{urlencode({'rv': obj.metadata.resourceVersion})}")


async def nodes(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    client = await ui.client(claims)
    try:
        found, _ = await client.list("Node", None)
        placed, _ = await client.list("Workload", None)
    except PersysError as e:
        return page_errors(ui, claims, e)
    usage = views.node_usage([(n, node_ready(n)) for n in found], placed)
    return ui.render("nodes.html", claims, nav="nodes", nodes=usage, shown=views.NODE_WORKLOADS_SHOWN)


async def kinds(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.page_caller(request)
    client = await ui.client(claims)
    try:
        entries = await client.discover()
    except PersysError as e:
        return page_errors(ui, claims, e)
    custom = sorted((e for e in entries if e.get("group") != CORE_GROUP), key=lambda e: (e["group"], e["kind"]))
    return ui.render("kinds.html", claims, nav="kinds", kinds=custom)


async def related_events(client: ApiClient, obj: Resource, limit: int = 30) -> list[Resource]:
    """The newest Events about ``obj`` (as ``persys describe`` shows them)."""
    try:
        events, _ = await client.list("Event", obj.metadata.namespace or None)
    except PersysError:
        return []  # a user who may read the object but not its namespace's events sees none
    mine = [e for e in events if involves(e, obj)]
    mine.sort(key=lambda e: str(e.spec.get("lastTimestamp") or e.metadata.creationTimestamp))
    return mine[-limit:]


def involves(event: Resource, obj: Resource) -> bool:
    involved = event.spec.get("involvedObject") or {}
    return bool(involved.get("name") == obj.metadata.name
                and str(involved.get("kind", obj.kind)).lower() == obj.kind.lower()
                and (not involved.get("uid") or involved.get("uid") == obj.metadata.uid))


async def permissions(client: ApiClient, namespace: str) -> dict[str, bool]:
    """What the caller may do to workloads of ``namespace``, as the API's access review answers: the buttons."""
    may: dict[str, bool] = {}
    for verb in ("update", "delete"):
        review = await client.review_access(verb, "Workload", namespace)
        may[verb] = bool((review.get("status") or {}).get("allowed"))
    return may

