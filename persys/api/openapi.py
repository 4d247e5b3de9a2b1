"""``/openapi.json``: an OpenAPI 3 document generated from the application's own router.

Generic ``{plural}`` routes are expanded for every registered kind the route applies to
(namespaced kinds under ``namespaces/{namespace}``, cluster kinds at the top, ``/status``
only for kinds with a status subresource), so the document is exactly what the server answers.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from persys.resources import Kind, Registry

_PARAM = re.compile(r"{(\w+)}")
_STATUS_REF = {"$ref": "#/components/schemas/Status"}
_QUERY = {
    "labelSelector": "label selector, as kubectl -l writes it",
    "watch": "true: stream changes as application/x-ndjson",
    "resourceVersion": "watch: start after this revision (410 when compacted)",
    "dryRun": "All: validate without storing",
}


def _kinds_for(method: str, path: str, registry: Registry) -> list[Kind | None]:
    """The kinds a route template serves (``[None]`` for a route without ``{plural}``)."""
    if "{plural}" not in path:
        return [None]
    namespaced_route = "{namespace}" in path
    named = "{name}" in path
    out: list[Kind | None] = []
    for kind in registry.all():
        if namespaced_route and not kind.namespaced:
            continue
        if not namespaced_route and kind.namespaced and (named or method != "GET"):
            continue
        if path.endswith("/status") and not kind.status_subresource:
            continue
        out.append(kind)
    return out


def _operation(method: str, path: str, handler: Any, kind: Kind | None) -> dict[str, Any]:
    doc = (getattr(handler, "__doc__", None) or handler.__name__).strip().splitlines()[0]
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(path)
    ]
    if kind is not None:
        params += [{"name": name, "in": "query", "required": False, "description": text,
                    "schema": {"type": "string"}} for name, text in _QUERY.items()]
    operation: dict[str, Any] = {
        "summary": doc,
        "operationId": f"{method.lower()}:{path}",
        "parameters": params,
        "responses": {"200": {"description": "OK"}, "default": {"description": "error",
                      "content": {"application/json": {"schema": _STATUS_REF}}}},
    }
    if kind is not None:
        operation["tags"] = [kind.kind]
    if method in ("POST", "PUT", "PATCH"):
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        operation["requestBody"] = {"required": True, "content": {content_type: {"schema": {"type": "object"}}}}
    return operation


def document(app: web.Application, registry: Registry) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*") or route.resource is None:
            continue
        template = route.resource.canonical
        for kind in _kinds_for(route.method, template, registry):
            path = template.replace("{plural}", kind.plural) if kind else template
            paths.setdefault(path, {})[route.method.lower()] = _operation(route.method, path, route.handler, kind)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Persys API", "version": "v1"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {"Status": {"type": "object", "properties": {
            "kind": {"type": "string"}, "code": {"type": "integer"}, "reason": {"type": "string"},
            "message": {"type": "string"}, "details": {"type": "object"}}}}},
    }
