"""The web dashboard the gateway serves at ``/ui/``: pages rendered on the server, kept live by SSE.

People log in with GitHub's web flow (``/auth/login``, the gateway's own) and everything they see or
do goes to the API as them (``users.UserClients``): the API's RoleBindings decide, its audit trail
records. Pages (``pages``) read once, through paged lists; streams (``streams``) follow API watches
and push re-rendered fragments; buttons (``actions``) are confirmed in the page and sent with a
header a cross-site form cannot set. Templates, script and style ship inside the package: no Node
toolchain, no build step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from aiohttp import web

from persys.gateway.dashboard import actions, pages, streams
from persys.gateway.dashboard.site import Ui
from persys.gateway.dashboard.users import UserClients
from persys.gateway.login import Login

__all__ = ["Dashboard", "UserClients"]

STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
Route = Callable[[Ui, web.Request], Awaitable[web.StreamResponse]]


class Dashboard:
    """The ``/ui/`` routes of one gateway."""

    def __init__(self, login: Login, clients: UserClients) -> None:
        self.ui = Ui(login, clients)

    def add_routes(self, app: web.Application) -> None:
        """Add the routes (before the gateway's catch-all proxy route)."""
        get: list[tuple[str, Route]] = [
            ("/ui/", pages.overview), ("/ui/workloads", pages.workloads),
            ("/ui/workloads/{namespace}/{name}", pages.workload), ("/ui/nodes", pages.nodes),
            ("/ui/deployments", pages.deployments), ("/ui/deployments/{namespace}/{name}", pages.deployment),
            ("/ui/kinds", pages.kinds), ("/ui/kinds/{group}/{plural}", pages.custom_list),
            ("/ui/kinds/{group}/{plural}/{namespace}/{name}", pages.custom_object),
            ("/ui/live/overview", streams.overview), ("/ui/live/nodes", streams.nodes),
            ("/ui/live/list/{group}/{plural}", streams.list_rows),
            ("/ui/live/object/{group}/{plural}/{namespace}/{name}", streams.object_panels),
            ("/ui/live/logs/{namespace}/{name}", streams.logs),
        ]
        app.router.add_get("/ui", self._home)
        for path, handler in get:
            app.router.add_get(path, partial(handler, self.ui))
        app.router.add_get("/ui/static/{file}", self._static)
        app.router.add_post("/ui/actions/{namespace}/{name}/{action}", partial(actions.act, self.ui))

    async def close(self) -> None:
        await self.ui.clients.close()

    async def _home(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/ui/")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        suffix = name[name.rfind("."):] if "." in name else ""
        resource = self.ui.static / name
        if "/" in name or suffix not in STATIC_TYPES or not resource.is_file():
            raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
        return web.Response(body=resource.read_bytes(), content_type=STATIC_TYPES[suffix],
                            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})
