"""``/openapi.json``: an OpenAPI 3 document generated from the application's own router.

Generic ``{plural}`` routes are expanded for every registered kind the route applies to
(namespaced kinds under ``namespaces/{namespace}``, cluster kinds at the top, ``/status``
only for kinds with a status subresource), so the document is exactly what the server answers.
A kind's create, apply and status bodies are typed from the kind's own schema (``Kind.spec_schema``
and ``status_schema``, translated by ``body_schema``), so that a client generator or a fuzzer
(``tests/api/test_fuzz.py``) writes objects the server can accept, and its mistakes reach the
validation of single fields instead of stopping at "not an object". Persys formats (``image``,
``gitref``, …) keep their names, which OpenAPI allows and generic tools ignore; ``dns1123`` also
gets its exact pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from persys.resources import API_VERSION, Kind, Registry
from persys.resources.names import NAME_MAX
from persys.resources.registry import ANNOTATIONS, LABELS
from persys.resources.schema import Schema

_PARAM = re.compile(r"{(\w+)}")
_STATUS_REF = {"$ref": "#/components/schemas/Status"}
_QUERY = {
    "labelSelector": "label selector, as kubectl -l writes it",
    "watch": "true: stream changes as application/x-ndjson",
    "resourceVersion": "watch: start after this revision (410 when compacted)",
    "dryRun": "All: validate without storing",
}
_COPIED = ("enum", "minimum", "maximum", "format", "default", "nullable")
_DNS1123 = {"type": "string", "format": "dns1123", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            "maxLength": NAME_MAX}
_STRING = {"type": "string"}
_PATH_PARAMS = {"namespace": _DNS1123, "name": _DNS1123}  # a write refuses any other; a read answers 404
H = TypeVar("H", bound=Callable[..., Any])
QUERY_ATTR = "persys_openapi_query"


def query(**params: str) -> Callable[[H], H]:
    """Document the query parameters (name: what it does) a handler of an extra route reads; the generic object
    routes' are documented here (``_QUERY``)."""
    def mark(handler: H) -> H:
        setattr(handler, QUERY_ATTR, params)
        return handler
    return mark


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
        "name": _DNS1123, "labels": openapi_schema(LABELS), "annotations": openapi_schema(ANNOTATIONS),
        "uid": _STRING, "resourceVersion": {"type": "string", "pattern": "^[0-9]+$"}, "generation": {"type": "integer"},
        "creationTimestamp": _STRING, "deletionTimestamp": {**_STRING, "nullable": True},
        "finalizers": {"type": "array", "items": _STRING},
    }
    if kind.namespaced:
        properties["namespace"] = _DNS1123
    return {"type": "object", "properties": properties, "additionalProperties": False}


def body_schema(kind: Kind) -> dict[str, Any]:
    """An object of ``kind`` as a create, apply or status write sends it."""
    properties = {"apiVersion": {"type": "string", "enum": [API_VERSION]},
                  "kind": {"type": "string", "enum": [kind.kind]},
                  "metadata": metadata_schema(kind), kind.spec_field: openapi_schema(kind.spec_schema)}
    if kind.status_subresource:
        properties["status"] = openapi_schema(kind.status_schema)
    required = ["metadata", kind.spec_field] if kind.spec_schema.get("required") else ["metadata"]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


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


def _request_body(method: str, kind: Kind | None, named: bool) -> dict[str, Any]:
    """A merge patch may null any field, so it stays a bare object; other kind routes take the kind's object,
    which names itself unless the URL does."""
    content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
    schema: dict[str, Any] = {"type": "object"}
    if kind is not None and method != "PATCH":
        schema = body_schema(kind)
        if not named:
            schema["properties"]["metadata"] = {**schema["properties"]["metadata"], "required": ["name"]}
    return {"required": True, "content": {content_type: {"schema": schema}}}


def _operation(method: str, path: str, handler: Any, kind: Kind | None) -> dict[str, Any]:
    doc = (getattr(handler, "__doc__", None) or handler.__name__).strip().splitlines()[0]
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMS.get(name, _STRING)}
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
        operation["requestBody"] = _request_body(method, kind, named="{name}" in path)
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
