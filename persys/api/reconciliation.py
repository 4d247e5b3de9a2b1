"""The reconciliation routes of the original Persys design, served next to the resource API.

``GET /reconciliation/stats`` (what the reconciler stored under ``/persys/stats/reconciler``),
``POST /reconciliation/trigger`` (a full pass now), ``POST /workloads/{id}/reconcile`` (this
workload now) and ``PUT /workloads/{id}/desired-state`` (Running or Stopped). ``{id}`` is a
workload's uid or name; ``?namespace=`` picks the namespace (default ``default``). The API
only writes etcd; the reconciler, watching it, does the work.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from persys.api import openapi
from persys.api.auth import FULL_ACCESS, allow
from persys.api.context import api_context
from persys.api.permission import permit
from persys.controllers.conditions import RECONCILE_REQUESTED
from persys.controllers.reconciler import TRIGGER_KEY
from persys.controllers.stats import load_stats
from persys.errors import BadRequest, Cause, Invalid, NotFound
from persys.httpedge import read_json
from persys.resources import Resource, now_iso
from persys.resources.kinds import WORKLOAD
from persys.resources.phase import DesiredState
from persys.resources.schema import check_dns1123
from persys.security.pki import GATEWAY
from persys.store import ObjectStore

NAMESPACE_QUERY = "the namespace of a workload named by {id} (default: default)"
DESIRED_STATES = tuple(state.value for state in DesiredState)

EMPTY_STATS: dict[str, Any] = {"totalProcessed": 0, "needingReconciliation": 0, "errors": 0, "successRate": 1.0,
                               "actions": {}, "lastPass": {"start": None, "end": None, "durationSeconds": None},
                               "passInProgress": False}


async def find_workload(store: ObjectStore, ident: str, namespace: str) -> Resource:
    """The workload named ``ident`` in ``namespace``, or else the one whose uid is ``ident``."""
    if check_dns1123(ident) is None:
        try:
            return await store.get(WORKLOAD.kind, namespace, ident)
        except NotFound:
            pass
    items, _ = await store.list(WORKLOAD.kind)
    for item in items:
        if item.metadata.uid == ident:
            return item
    raise NotFound(f'workload "{ident}" not found (by name in namespace {namespace!r} or by uid)')


@allow(*FULL_ACCESS, GATEWAY)
async def stats(request: web.Request) -> web.Response:
    """Reconciliation statistics: totals, errors, success rate, actions, the last full pass."""
    await permit(request, "list", WORKLOAD, "")  # about every namespace's workloads
    try:
        data = await load_stats(api_context(request).etcd)
    except ValueError:
        data = {}
    return web.json_response({**EMPTY_STATS, **data})


@allow(*FULL_ACCESS, GATEWAY)
async def trigger(request: web.Request) -> web.Response:
    """Ask the reconciler for a full pass now (202: it runs asynchronously)."""
    await permit(request, "update", WORKLOAD, "")
    now = now_iso()
    await api_context(request).etcd.put(TRIGGER_KEY, json.dumps({"time": now}).encode())
    return web.json_response({"status": "triggered", "time": now}, status=202)


@allow(*FULL_ACCESS, GATEWAY)
@openapi.query(namespace=NAMESPACE_QUERY)
async def reconcile_one(request: web.Request) -> web.Response:
    """Ask the reconciler to look at one workload now (202)."""
    store = api_context(request).store
    found = await find_workload(store, request.match_info["id"], request.query.get("namespace", "default"))
    await permit(request, "update", WORKLOAD, found.metadata.namespace, found.metadata.name, "reconcile")
    now = now_iso()
    await store.modify(WORKLOAD.kind, found.metadata.namespace, found.metadata.name,
                       lambda obj: obj.metadata.annotations.__setitem__(RECONCILE_REQUESTED, now))
    return web.json_response({"status": "queued", "namespace": found.metadata.namespace,
                              "name": found.metadata.name, "uid": found.metadata.uid, "time": now}, status=202)


async def _desired_state(request: web.Request) -> str:
    body = await read_json(request, "body")
    if not isinstance(body, dict):
        raise BadRequest('body must be an object like {"desiredState": "Stopped"}')
    value = body.get("desiredState")
    if value not in DESIRED_STATES:
        message = "required" if value is None else f"must be one of {', '.join(DESIRED_STATES)}"
        raise Invalid(f"desiredState: {message}", causes=[Cause("desiredState", message)])
    return str(value)


@allow(*FULL_ACCESS, GATEWAY)
@openapi.query(namespace=NAMESPACE_QUERY)
async def desired_state(request: web.Request) -> web.Response:
    """Set a workload's ``spec.desiredState`` (Running or Stopped); answers the workload."""
    value = await _desired_state(request)
    store = api_context(request).store
    found = await find_workload(store, request.match_info["id"], request.query.get("namespace", "default"))
    await permit(request, "update", WORKLOAD, found.metadata.namespace, found.metadata.name, "desired-state")
    updated = await store.modify(WORKLOAD.kind, found.metadata.namespace, found.metadata.name,
                                 lambda obj: obj.spec.__setitem__("desiredState", value))
    return web.json_response(WORKLOAD.to_wire(updated))


def add_routes(app: web.Application) -> None:
    """Add the reconciliation routes (pass to ``build_app(ctx, extra_routes=[add_routes])``)."""
    app.router.add_get("/reconciliation/stats", stats)
    app.router.add_post("/reconciliation/trigger", trigger)
    app.router.add_post("/workloads/{id}/reconcile", reconcile_one)
    app.router.add_put("/workloads/{id}/desired-state", desired_state)
