"""Discovery: ``GET /apis`` tells clients every kind this server serves, ``GET /apis/{group}/{version}`` one group's.

Clients (the CLI, operators) know the built-in kinds already; custom kinds they learn here:
group, versions, kind, plural, singular, short names, scope, whether there is a status
subresource, the printer columns ``persys get`` shows, and the object's schema (OpenAPI v3, the
one ``/openapi.json`` uses, with the descriptions a definition wrote) for ``persys explain``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from persys.api.auth import ANY_ROLE, allow
from persys.api.context import api_context
from persys.api.openapi import body_schema
from persys.errors import NotFound
from persys.resources import Kind
from persys.resources.definitions import describe


def _answer(kinds: list[Kind]) -> web.Response:
    versions: dict[str, list[str]] = {}
    for kind in sorted(kinds, key=lambda k: (k.group, k.plural)):
        for version in kind.versions:
            if version not in versions.setdefault(kind.group, []):
                versions[kind.group].append(version)
    entries: list[dict[str, Any]] = [{**describe(kind), "schema": body_schema(kind)}
                                     for kind in sorted(kinds, key=lambda k: (k.group, k.plural))]
    return web.json_response({
        "kind": "APIKindList", "apiVersion": "v1",
        "groups": [{"name": group, "versions": served} for group, served in versions.items()],
        "kinds": entries,
    })


@allow(*ANY_ROLE)
async def all_kinds(request: web.Request) -> web.Response:
    """Every kind served: groups with their versions, and each kind's names, scope, columns and schema."""
    return _answer(api_context(request).registry.all())


@allow(*ANY_ROLE)
async def group_kinds(request: web.Request) -> web.Response:
    """The kinds served in one group version; 404 listing the served kinds when there are none."""
    group, version = request.match_info["group"], request.match_info["version"]
    registry = api_context(request).registry
    kinds = [kind for kind in registry.all() if kind.group == group and version in kind.versions]
    if not kinds:
        raise NotFound(f"{group}/{version} is not served; served kinds: {registry.describe()}")
    return _answer(kinds)
