"""The generic object routes: get, list, create, apply, status, merge patch and delete on any kind.

Handlers find the kind by the URL's group, version and plural in the registry, so a user-defined
kind is served as soon as it is registered. Each handler authorizes its request with
``persys.api.permission.permit`` (certificate roles, or the bindings of an impersonated user).
Validation is the kind's own (``Kind.parse``), then the server's admission hooks
(``ApiContext.admission``, dry runs too); storage is ``ObjectStore``'s, with compare-and-swap
on ``metadata.resourceVersion`` when a body carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from persys.api.auth import (
    ANY_ROLE,
    Identity,
    allow,
    check_event_write,
    check_status_write,
    identity,
    is_node,
)
from persys.api.context import ApiContext, api_context
from persys.api.permission import permit
from persys.api.watch import watch_stream
from persys.errors import BadRequest, Cause, Conflict, Gone, Invalid, NotFound, PersysError
from persys.httpedge import is_digits, json_response, read_json
from persys.resources import Kind, Resource, Selector
from persys.resources.model import Propagation
from persys.resources.names import check_dns1123
from persys.resources.registry import CORE_GROUP, CORE_VERSION
from persys.store import ObjectStore, paging
from persys.store.objects import as_created, check_uid, replaced

_RETRIES = 5  # optimistic writes without a resourceVersion retry on concurrent changes
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Target:
    """What a URL names: a kind, a namespace ('' for cluster kinds or all namespaces), maybe a name."""

    kind: Kind
    namespace: str
    name: str
    version: str = ""  # the version the URL names ("" for the kind's own)


def target(request: web.Request) -> Target:
    info = request.match_info
    group, version = info.get("group", CORE_GROUP), info.get("version", CORE_VERSION)
    kind = api_context(request).registry.served(group, version, info["plural"])
    namespace, name = info.get("namespace"), info.get("name", "")
    prefix = f"/apis/{group}/{version}"
    if namespace is not None and not kind.namespaced:
        raise NotFound(f"{kind.plural} are cluster-scoped: use {prefix}/{kind.plural}")
    if namespace is None and kind.namespaced and (name or request.method not in ("GET", "HEAD")):
        raise NotFound(f"{kind.plural} are namespaced: use {prefix}/namespaces/{{namespace}}/{kind.plural}")
    if namespace is not None:
        check_namespace(namespace)
    return Target(kind, namespace or "", name, version)


def check_namespace(namespace: str) -> None:
    """Invalid (a field error on metadata.namespace) unless ``namespace`` is a DNS-1123 label (no ``a/b``)."""
    if msg := check_dns1123(namespace):
        raise Invalid(f"metadata.namespace {namespace!r} is invalid: {msg}", causes=[Cause("metadata.namespace", msg)])


def dry_run(request: web.Request) -> bool:
    value = request.query.get("dryRun", "")
    if value not in ("", "All"):
        raise BadRequest(f"dryRun must be All, not {value!r}")
    return value == "All"


def respond(kind: Kind, obj: Resource, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """``obj`` in its wire shape; built without ``Kind.to_wire``'s deep copy, as it is only serialized."""
    data: dict[str, Any] = {"apiVersion": obj.apiVersion, "kind": obj.kind, "metadata": obj.metadata.to_dict(),
                            kind.spec_field: obj.spec}
    if kind.spec_field == "spec":
        data["status"] = obj.status
    return json_response(data, status=status, headers=headers)


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 400 when it is empty, not JSON, too deep or not an object, 413 when too large."""
    data = await read_json(request)
    if data is None:
        raise BadRequest("request body is empty")
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, not {type(data).__name__}")
    return data


def place(where: Target, data: dict[str, Any]) -> str:
    """Put the URL's namespace into the body's metadata; reject a body naming another object.

    Returns the name the body gives (for authorization before validation). A body without
    ``apiVersion`` is of the URL's version; one naming another served version of the kind is refused."""
    url_version = f"{where.kind.group}/{where.version or where.kind.version}"
    given = data.setdefault("apiVersion", url_version)
    if given != url_version and given in [f"{where.kind.group}/{v}" for v in where.kind.versions]:
        raise BadRequest(f"apiVersion {given!r} does not match the URL's {url_version!r}")
    meta = data.setdefault("metadata", {})
    if not isinstance(meta, dict):
        return ""
    if where.kind.namespaced:
        if isinstance(meta.get("namespace"), str) and meta["namespace"]:
            check_namespace(meta["namespace"])
        if meta.get("namespace") not in (None, "", where.namespace):
            raise BadRequest(f"metadata.namespace {meta['namespace']!r} does not match the URL's "
                             f"namespace {where.namespace!r}")
        meta["namespace"] = where.namespace
    name = meta.get("name")
    if where.name and name not in (None, "", where.name):
        raise BadRequest(f"metadata.name {name!r} does not match the URL's name {where.name!r}")
    if where.name and not name:
        meta["name"] = where.name
    return str(meta.get("name") or "")


_META_TYPES: dict[str, tuple[type, ...]] = {
    "uid": (str,), "creationTimestamp": (str,), "deletionTimestamp": (str,), "generation": (int,),
    "resourceVersion": (str, int), "labels": (dict,), "annotations": (dict,), "finalizers": (list,),
}


def parse(kind: Kind, data: dict[str, Any]) -> Resource:
    """``Kind.parse``, after checking the types of the metadata it copies without validating (422)."""
    meta = data.get("metadata")
    causes: list[Cause] = []
    if isinstance(meta, dict):
        for key, types in _META_TYPES.items():
            value = meta.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                causes.append(Cause(f"metadata.{key}", f"must be a {' or '.join(t.__name__ for t in types)}"))
        version = meta.get("resourceVersion")
        if version not in (None, "") and not is_digits(str(version)):
            causes.append(Cause("metadata.resourceVersion", "must be a number"))
        if isinstance(meta.get("finalizers"), list) and not all(isinstance(f, str) for f in meta["finalizers"]):
            causes.append(Cause("metadata.finalizers", "must be a list of strings"))
    if causes:
        raise Invalid(f"{kind.kind} is invalid: " + "; ".join(f"{c.field}: {c.message}" for c in causes),
                      causes=causes)
    return kind.parse(data)


@allow(*ANY_ROLE)
async def get_or_list(request: web.Request) -> web.StreamResponse:
    """Read one object, list a collection (labelSelector), or watch it (watch=true)."""
    where = target(request)
    store = api_context(request).store
    if where.name:
        await permit(request, "get", where.kind, where.namespace, where.name)
        return respond(where.kind, await store.get(where.kind.kind, where.namespace, where.name))
    selector = Selector(request.query.get("labelSelector", ""))
    if request.query.get("watch") in ("true", "1"):
        await permit(request, "watch", where.kind, where.namespace, None)
        return await watch_stream(request, where.kind, where.namespace or None, selector)
    await permit(request, "list", where.kind, where.namespace, None)
    limit = paging.parse_limit(request.query.get("limit"))
    token = request.query.get("continue", "")
    name_contains = paging.parse_name_part(request.query.get("nameContains"))
    try:
        items, revision, following = await store.list_wire(where.kind.kind, where.namespace or None, selector,
                                                           limit=limit, token=token, name_contains=name_contains)
    except Gone as e:
        raise Gone(f"continue: the list's snapshot is gone ({e.message}); list again without continue") from None
    if not where.kind.builtin:  # objects read as the stored version (see Kind.from_wire)
        for item in items:
            item["apiVersion"] = where.kind.api_version
    metadata = {"resourceVersion": str(revision), **({"continue": following} if following else {})}
    return json_response({
        "kind": f"{where.kind.kind}List", "apiVersion": where.kind.api_version, "metadata": metadata, "items": items,
    })


@allow(*ANY_ROLE)
async def create(request: web.Request) -> web.Response:
    """Create an object (201); 409 when it exists."""
    where = target(request)
    data = await read_body(request)
    await permit(request, "create", where.kind, where.namespace, place(where, data))
    obj = parse(where.kind, data)
    ctx = api_context(request)
    await check_event_write(identity(request), ctx.store, obj)
    await ctx.admit(where.kind, obj, None)
    if dry_run(request):
        return respond(where.kind, as_created(obj), 201)
    return respond(where.kind, ctx.stored(await ctx.store.create(obj)), 201)


@allow(*ANY_ROLE)
async def apply(request: web.Request) -> web.Response:
    """Create or update (the verb behind ``persys apply``); X-Persys-Apply says what happened."""
    where = target(request)
    data = await read_body(request)
    name = place(where, data)
    await permit(request, "update", where.kind, where.namespace, name)
    obj = parse(where.kind, data)
    if not where.name:
        raise BadRequest(f"PUT needs the object's URL: …/{where.kind.plural}/{obj.metadata.name}")
    ctx, dry = api_context(request), dry_run(request)
    await check_event_write(identity(request), ctx.store, obj, replaces=True)
    for _ in range(_RETRIES):
        done = await _apply_once(ctx, where.kind, obj, dry)
        if done is not None:
            result, outcome = done
            if not dry:
                ctx.stored(result)
            return respond(where.kind, result, 201 if outcome == "created" else 200, {"X-Persys-Apply": outcome})
    raise Conflict(f'{where.kind.singular} "{where.name}" kept changing; retry')


async def _apply_once(ctx: ApiContext, kind: Kind, obj: Resource, dry: bool) -> tuple[Resource, str] | None:
    """One attempt at apply: (result, created|configured|unchanged), or None when a concurrent write
    won and the caller, who gave no resourceVersion, should try again."""
    store, wanted, meta = ctx.store, obj.metadata.resourceVersion, obj.metadata
    found = await _create_or_get(ctx, kind, obj) if not (dry or wanted or kind.lease_ttl) else None
    if found is not None and found[1]:
        return found[0], "created"
    try:
        current = found[0] if found is not None else await store.get(obj.kind, meta.namespace, meta.name)
    except NotFound:
        if wanted and not meta.uid:  # with a uid, the version is of that object (an export), not of this name
            raise
        await ctx.admit(kind, obj, None)
        try:
            return (as_created(obj) if dry else await store.create(obj)), "created"
        except Conflict:
            return None  # created concurrently: update it instead
    check_uid(current, obj)  # before the retries below, which would take its Conflict for a race
    await ctx.admit(kind, obj, current)
    if dry:
        updated = replaced(store.registry.get(obj.kind), current, obj)
        return updated, "unchanged" if updated.to_dict(copy=False) == current.to_dict(copy=False) else "configured"
    attempt = obj.copy()
    attempt.metadata.resourceVersion = wanted or current.metadata.resourceVersion
    try:
        result = await store.replace(attempt)
    except Conflict:
        if wanted:
            raise
        return None
    same = result.metadata.resourceVersion == current.metadata.resourceVersion
    return result, "unchanged" if same else "configured"


def status_target(request: web.Request) -> Target:
    where = target(request)
    if not where.kind.status_subresource:
        raise NotFound(f"{where.kind.plural} have no status subresource")
    return where


@allow(*ANY_ROLE)
async def get_status(request: web.Request) -> web.Response:
    """Read an object through its status subresource."""
    where = status_target(request)
    await permit(request, "get", where.kind, where.namespace, where.name, "status")
    return respond(where.kind, await api_context(request).store.get(where.kind.kind, where.namespace, where.name))


@allow(*ANY_ROLE)
async def put_status(request: web.Request) -> web.Response:
    """Replace an object's status (CAS when the body carries resourceVersion); generation never moves."""
    where = status_target(request)
    await permit(request, "update", where.kind, where.namespace, where.name, "status")
    data = await read_body(request)
    place(where, data)
    raw_meta = data.get("metadata")
    meta = raw_meta if isinstance(raw_meta, dict) else {}
    wanted = str(meta.get("resourceVersion") or "")
    if wanted and not is_digits(wanted):
        raise BadRequest(f"metadata.resourceVersion must be a number, not {wanted!r}")
    status = where.kind.parse_status(data.get("status"), data.get("apiVersion"))
    store, who = api_context(request).store, identity(request)
    if dry_run(request):
        current = await store.get(where.kind.kind, where.namespace, where.name)
        check_status_write(who, current, status)
        current.status = status
        return respond(where.kind, current)
    if is_node(who):
        return respond(where.kind, await _node_status(store, who, where, status, wanted))
    result = await store.update_status(where.kind.kind, where.namespace, where.name, status,
                                       resource_version=wanted)
    return respond(where.kind, result)


async def _node_status(store: ObjectStore, who: Identity, where: Target, status: dict[str, Any],
                       wanted: str) -> Resource:
    """A node's status write, checked against the very version it replaces: were the workload rebound
    between the check and the write, the write's CAS fails and the check runs again on the new binding."""

    def change(obj: Resource) -> None:  # a copy of the stored object, written back with CAS
        if wanted and int(wanted) != obj.resource_version:
            raise Conflict(f'{where.kind.singular} "{where.name}" was modified; resourceVersion {wanted} is stale')
        check_status_write(who, obj, status)
        obj.status = status

    return await store.modify(where.kind.kind, where.namespace, where.name, change)


async def _create_or_get(ctx: ApiContext, kind: Kind, obj: Resource) -> tuple[Resource, bool] | None:
    """Most applies create: admitted as a creation, ``obj`` is created, or what has its name is read, in one
    etcd round trip instead of a read and then a write. None when the creation is not admitted (an
    update may be: the caller reads and decides)."""
    try:
        await ctx.admit(kind, obj, None)
    except PersysError:
        return None
    return await ctx.store.create_or_get(obj)


def merge_patch(target_doc: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target_doc) if isinstance(target_doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@allow(*ANY_ROLE)
async def patch(request: web.Request) -> web.Response:
    """Apply a JSON merge patch to metadata and spec; the result is validated again."""
    where = target(request)
    if request.content_type not in (MERGE_PATCH, "application/json"):
        raise BadRequest(f"unsupported patch type {request.content_type!r}; use {MERGE_PATCH}")
    await permit(request, "patch", where.kind, where.namespace, where.name)
    changes = await read_body(request)
    ctx = api_context(request)
    store = ctx.store
    for _ in range(_RETRIES):
        current = await store.get(where.kind.kind, where.namespace, where.name)
        merged = merge_patch(where.kind.to_wire(current), changes)
        merged.pop("status", None)
        if "apiVersion" not in changes:
            merged.pop("apiVersion", None)  # the URL's version, not the stored one the object reads as
        place(where, merged)
        obj = parse(where.kind, merged)
        check_uid(current, obj)
        await check_event_write(identity(request), store, obj, replaces=True)
        await ctx.admit(where.kind, obj, current)
        if dry_run(request):
            return respond(where.kind, replaced(where.kind, current, obj))
        try:
            return respond(where.kind, ctx.stored(await store.replace(obj)))
        except Conflict:
            if obj.metadata.resourceVersion != current.metadata.resourceVersion:
                raise  # the patch itself asked for a stale resourceVersion
    raise Conflict(f'{where.kind.singular} "{where.name}" kept changing; retry')


@allow(*ANY_ROLE)
async def delete(request: web.Request) -> web.Response:
    """Delete an object (or mark it, while finalizers remain); answers with its last state.

    ``propagationPolicy`` (Background, Foreground or Orphan) says what becomes of its dependents
    (``ObjectStore.delete``); without one, an object already being deleted keeps its policy."""
    where = target(request)
    await permit(request, "delete", where.kind, where.namespace, where.name)
    store = api_context(request).store
    policy = request.query.get("propagationPolicy", "")
    if policy and policy not in tuple(Propagation):
        raise BadRequest(f"propagationPolicy must be one of {', '.join(Propagation)}, not {policy!r}")
    propagation = Propagation(policy) if policy else None
    if dry_run(request):
        return respond(where.kind, await store.get(where.kind.kind, where.namespace, where.name))
    wanted = request.query.get("resourceVersion", "")
    if wanted and not is_digits(wanted):
        raise BadRequest(f"resourceVersion must be a number, not {wanted!r}")
    for _ in range(_RETRIES):
        try:
            return respond(where.kind, await store.delete(where.kind.kind, where.namespace, where.name,
                                                          resource_version=wanted, propagation=propagation))
        except Conflict:
            if wanted:
                raise  # the caller asked for that version: a concurrent write is theirs to see
    raise Conflict(f'{where.kind.singular} "{where.name}" kept changing; retry')
