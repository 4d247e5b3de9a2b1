"""The dashboard's buttons: stop, start, reconcile and delete a workload, as the user.

``POST /ui/actions/{namespace}/{name}/{action}`` is what a button sends after the user confirmed it
in the page's dialog. Each calls the API route the CLI calls (``persys stop|start|reconcile``,
``persys delete``) through the user's impersonating client, so the RoleBindings decide (a view-only
user gets the API's 403) and the API's audit trail records the person, the verb and the workload.
A request without the dashboard's header, or from another origin, is refused before anything is sent.
"""

from __future__ import annotations

from aiohttp import web

from persys.errors import BadRequest
from persys.gateway.dashboard.site import Ui, path_name
from persys.observability.logging import get_logger

log = get_logger("gateway.dashboard")

ACTIONS = ("stop", "start", "reconcile", "delete")
DONE = {"stop": "stop requested: desiredState Stopped", "start": "start requested: desiredState Running",
        "reconcile": "reconcile requested", "delete": "delete requested"}


def check_action(action: str) -> str:
    if action not in ACTIONS:
        raise BadRequest(f"action: must be one of {', '.join(ACTIONS)}, not {action!r}")
    return action


async def act(ui: Ui, request: web.Request) -> web.Response:
    claims = await ui.caller(request)
    ui.check_action(request)
    action = check_action(request.match_info["action"])
    namespace, name = path_name(request, "namespace"), path_name(request, "name")
    client = await ui.client(claims)
    query = {"namespace": namespace}
    if action in ("stop", "start"):
        state = "Stopped" if action == "stop" else "Running"
        await client.request("PUT", f"/workloads/{name}/desired-state", params=query, body={"desiredState": state})
    elif action == "reconcile":
        await client.request("POST", f"/workloads/{name}/reconcile", params=query)
    else:
        await client.delete("Workload", name, namespace=namespace)
    log.info("dashboard action", user=claims.user, action=action, namespace=namespace, workload=name)
    return web.json_response({"action": action, "namespace": namespace, "name": name, "message": DONE[action]})
