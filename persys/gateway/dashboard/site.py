"""What every dashboard route shares: who the caller is, their API client, and the templates.

A page asked without a valid session cookie redirects to ``/auth/login?next=<the page>`` (GitHub's
web flow, which comes back to it); a stream or an action answers 401 instead, which the page's
script turns into "log in again". Pages are Jinja2 templates (autoescaped) under ``templates/``,
fragments (a list row, a status panel) are macros of the same files, so a live update renders
exactly as a reload would. Responses carry a Content-Security-Policy allowing only the dashboard's
own script and style.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any
from urllib.parse import quote

import jinja2
import yaml
from aiohttp import web

from persys.client.api import ApiClient
from persys.errors import BadRequest, Forbidden, PersysError, Unauthorized
from persys.gateway.dashboard.users import UserClients
from persys.gateway.login import Login
from persys.gateway.tokens import Claims
from persys.resources.columns import age_since
from persys.resources.names import check_dns1123

UI_HEADER = "X-Persys-UI"  # actions must carry it: a cross-site form cannot set a header
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def as_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True) if value else "{}"


class Ui:
    """The dashboard's shared parts."""

    def __init__(self, login: Login, clients: UserClients) -> None:
        self.login = login
        self.clients = clients
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("persys.gateway.dashboard", "templates"),
            autoescape=True, trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(age=age_since, yaml=as_yaml)
        self.static = files("persys.gateway.dashboard") / "static"

    async def page_caller(self, request: web.Request) -> Claims:
        """The caller of a page; a browser without a session is sent to log in and come back here."""
        try:
            return await self.login.caller(request, cookies=True)
        except Unauthorized:
            raise web.HTTPFound("/auth/login?next=" + quote(str(request.rel_url), safe="")) from None

    async def caller(self, request: web.Request) -> Claims:
        """The caller of a stream or an action: 401 without a session."""
        return await self.login.caller(request, cookies=True)

    async def client(self, claims: Claims) -> ApiClient:
        return await self.clients.of(claims)

    def check_action(self, request: web.Request) -> None:
        """Refuse a state-changing request that did not come from the dashboard's own script."""
        if request.headers.get(UI_HEADER) != "1":
            raise Forbidden(f"dashboard actions need the {UI_HEADER}: 1 header (sent by the dashboard's script)")
        origin = request.headers.get("Origin")
        if origin and origin.rstrip("/") != f"{request.scheme}://{request.host}":
            raise Forbidden(f"dashboard actions come from this gateway's pages, not from {origin}")

    def render(self, name: str, claims: Claims | None, **context: Any) -> web.Response:
        text = self.templates.get_template(name).render(user=claims.user if claims else "", **context)
        return web.Response(text=text, content_type="text/html", headers=SECURITY_HEADERS)

    def fragment(self, macro: str, *args: Any) -> str:
        """One macro of ``fragments.html``, rendered: the HTML a live update puts in the page."""
        module = self.templates.get_template("fragments.html").module
        return str(getattr(module, macro)(*args))


def namespace_arg(request: web.Request, name: str = "namespace") -> str:
    """A namespace from the query ('' for all); BadRequest naming the parameter when it is not a DNS label."""
    value = request.query.get(name, "").strip()
    if value and check_dns1123(value):
        raise BadRequest(f"{name}: {value!r} is not a namespace name (a DNS-1123 label)")
    return value


def page_errors(ui: Ui, claims: Claims, error: PersysError) -> web.Response:
    """A page that could not be shown: the API's reason (403 naming the binding it lacks, 400 naming the field)."""
    response = ui.render("error.html", claims, code=error.code, message=error.message)
    response.set_status(error.code)
    return response


def path_name(request: web.Request, field: str) -> str:
    """A namespace or name from the path; BadRequest naming the field when it is not a DNS-1123 label."""
    value = request.match_info[field]
    problem = check_dns1123(value)
    if problem:
        raise BadRequest(f"{field}: {value!r} {problem}")
    return value
