"""``/openapi.json``: an OpenAPI 3 document generated from the application's own router.

Generic ``{plural}`` routes are expanded for every registered kind the route applies to
(namespaced kinds under ``namespaces/{namespace}``, cluster kinds at the top, ``/status``
only for kinds with a status subresource), so the document is exactly what the server answers.
A kind's create, apply and status bodies are typed from the kind's own schema (``Kind.spec_schema``
and ``status_schema``, translated by ``body_schema``), so that a client generator or a fuzzer
(``tests/api/test_fuzz.py``) writes objects the server can accept, and its mistakes reach the
validation of single fields instead of stopping at "not an object". Persys formats (``image``,
``gitref``, …) keep their names, which OpenAPI allows and generic tools ignore; ``dns1123`` also
gets its exact pattern. Custom kinds appear as soon as they are served, under their own group and
each served version (``/apis/{group}/{version}/…``), typed by their definition's OpenAPI v3 schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from persys.resources import Kind, Registry
from persys.resources.names import NAME_MAX, SUBDOMAIN_MAX, check_dns1123
from persys.resources.registry import ANNOTATIONS, LABELS
from persys.resources.schema import Schema

_PARAM = re.compile(r"{(\w+)}")
_STATUS_REF = {"$ref": "#/components/schemas/Status"}
_QUERY = {
    "labelSelector": "label selector, as kubectl -l writes it",
    "watch": "true: stream changes as application/x-ndjson",
    "resourceVersion": "watch: start after this revision (410 when compacted)",
    "dryRun": "All: validate without storing",
    "limit": "list: at most this many objects (1-10000); metadata.continue then names the next page",
    "continue": "list: the next page of a limited list, from the same snapshot (410 once it is compacted)",
    "nameContains": "list: only objects whose name holds this text, in any case (a Persys extension)",
}
_COPIED = ("enum", "minimum", "maximum", "format", "default", "nullable")
_DNS1123 = {"type": "string", "format": "dns1123", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            "maxLength": NAME_MAX}
_STRING = {"type": "string"}
_SUBDOMAIN = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
              "maxLength": SUBDOMAIN_MAX}
_PATH_PARAMS = {"namespace": _DNS1123, "name": _DNS1123}  # a write refuses any other; a read answers 404
Served = tuple[Kind, str]  # a kind and one version it is served in
H = TypeVar("H", bound=Callable[..., Any])
QUERY_ATTR = "persys_openapi_query"


def query(**params: str) -> Callable[[H], H]:
    """Document the query parameters (name: what it does) a handler of an extra route reads; the generic object
    routes' are documented here (``_QUERY``)."""
    def mark(handler: H) -> H:
        setattr(handler, QUERY_ATTR, params)
        return handler
    return mark


def _name_schema(kind: Kind | None) -> dict[str, Any]:
    """Object names are DNS-1123 labels, but for kinds whose names are subdomains (ResourceDefinitions)."""
    return _DNS1123 if kind is None or kind.name_check is check_dns1123 else _SUBDOMAIN


def openapi_schema(schema: Schema) -> dict[str, Any]:
    """A Persys schema (``persys.resources.schema``) as an OpenAPI 3.0 schema object."""
    kind = schema.get("type", "any")
    if schema.get("format") == "dns1123":
        return {**_DNS1123, **{key: schema[key] for key in _COPIED if key in schema}}
    out: dict[str, Any] = {} if kind in ("any", "map") else {"type": kind}
    if kind == "map":
        out = {"type": "object", "additionalProperties": openapi_schema(schema.get("values", _STRING))}
    elif kind == "object":  # unknown fields are refused by name
        out["properties"] = {name: openapi_schema(sub) for name, sub in schema.get("properties", {}).items()}
        out["additionalProperties"] = False
        if schema.get("required"):  # and Persys counts "" as missing
            out["required"] = list(schema["required"])
            for name in out["required"]:
                if out["properties"].get(name, {}).get("type") == "string":
                    out["properties"][name] = {**out["properties"][name], "minLength": 1}
    elif kind == "array":
        out["items"] = openapi_schema(schema.get("items", {}))
    if "pattern" in schema:  # Persys matches the whole value; OpenAPI searches
        out["pattern"] = f"^(?:{schema['pattern']})$"
    return {**out, **{key: schema[key] for key in _COPIED if key in schema}}


def metadata_schema(kind: Kind) -> dict[str, Any]:
    """``metadata`` as ``Kind.parse`` reads it (the server sets uid, generation and the timestamps)."""
    properties: dict[str, Any] = {
        "name": _name_schema(kind), "labels": openapi_schema(LABELS), "annotations": openapi_schema(ANNOTATIONS),
        "uid": _STRING, "resourceVersion": {"type": "string", "pattern": "^[0-9]+$"}, "generation": {"type": "integer"},
        "creationTimestamp": _STRING, "deletionTimestamp": {**_STRING, "nullable": True},
        "finalizers": {"type": "array", "items": _STRING},
    }
    if kind.namespaced:
        properties["namespace"] = _DNS1123
    return {"type": "object", "properties": properties, "additionalProperties": False}


def body_schema(kind: Kind, version: str = "") -> dict[str, Any]:
    """An object of ``kind`` as a create, apply or status write sends it (in ``version``, default the stored one)."""
    spec = kind.openapi_part("spec") or openapi_schema(kind.spec_schema)
    properties = {"apiVersion": {"type": "string", "enum": [f"{kind.group}/{version or kind.version}"]},
                  "kind": {"type": "string", "enum": [kind.kind]},
                  "metadata": metadata_schema(kind), kind.spec_field: spec}
    if kind.status_subresource:
        properties["status"] = kind.openapi_part("status") or openapi_schema(kind.status_schema)
    required = ["metadata", kind.spec_field] if spec.get("required") else ["metadata"]
    described = {"description": kind.description} if kind.description else {}
    return {"type": "object", **described, "properties": properties, "required": required,
            "additionalProperties": False}


def _kinds_for(method: str, path: str, registry: Registry) -> list[Served | None]:
    """The kinds (and versions) a route template serves (``[None]`` for a route without ``{plural}``):
    the built-in ones on ``/apis/persys.dev/v1`` routes, the others on ``/apis/{group}/{version}`` ones."""
    if "{plural}" not in path:
        return [None]
    namespaced_route = "{namespace}" in path
    named = "{name}" in path
    out: list[Served | None] = []
    for kind in registry.all():
        if kind.builtin == ("{group}" in path):
            continue
        if namespaced_route and not kind.namespaced:
            continue
        if not namespaced_route and kind.namespaced and (named or method != "GET"):
            continue
        if path.endswith("/status") and not kind.status_subresource:
            continue
        out += [(kind, version) for version in kind.versions]
    return out


def _request_body(method: str, served: Served | None, named: bool) -> dict[str, Any]:
    """A merge patch may null any field, so it stays a bare object; other kind routes take the kind's object,
    which names itself unless the URL does."""
    content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
    schema: dict[str, Any] = {"type": "object"}
    if served is not None and method != "PATCH":
        schema = body_schema(*served)
        if not named:
            schema["properties"]["metadata"] = {**schema["properties"]["metadata"], "required": ["name"]}
    return {"required": True, "content": {content_type: {"schema": schema}}}


def _operation(method: str, path: str, handler: Any, served: Served | None) -> dict[str, Any]:
    doc = (getattr(handler, "__doc__", None) or handler.__name__).strip().splitlines()[0]
    kind = served[0] if served is not None else None
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": _name_schema(kind) if name == "name" else _PATH_PARAMS.get(name, _STRING)}
        for name in _PARAM.findall(path)
    ]
    query = {**(_QUERY if kind is not None else {}), **getattr(handler, QUERY_ATTR, {})}
    params += [{"name": name, "in": "query", "required": False, "description": text,
                "schema": {"type": "string"}} for name, text in query.items()]
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
        operation["requestBody"] = _request_body(method, served, named="{name}" in path)
    return operation


def document(app: web.Application, registry: Registry) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*") or route.resource is None:
            continue
        template = route.resource.canonical
        for served in _kinds_for(route.method, template, registry):
            path = template
            if served is not None:
                kind, version = served
                path = path.replace("{group}", kind.group).replace("{version}", version)
                path = path.replace("{plural}", kind.plural)
            paths.setdefault(path, {})[route.method.lower()] = _operation(route.method, path, route.handler, served)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Persys API", "version": "v1"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {"Status": {"type": "object", "properties": {
            "kind": {"type": "string"}, "code": {"type": "integer"}, "reason": {"type": "string"},
            "message": {"type": "string"}, "details": {"type": "object"}}}}},
    }
