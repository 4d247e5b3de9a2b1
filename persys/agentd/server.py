"""The agent's HTTP API (aiohttp): HMAC-verified routes over the executor and the runtime.

Every route except ``/healthz`` and ``/metrics`` needs a valid ``PERSYS-HMAC-SHA256``
signature; a refused request answers 401 with the reason. ``persys_agent_signed_requests_total`` counts
them by node, key id (``keyId`` of the ones accepted) and result: during an HMAC rotation it shows when
signers stopped using the old key, and that none was refused. Changes are queued on the
executor and answered with 202 and an operation id; reads go straight to the runtime.
Errors are the same JSON ``Status`` bodies the API server answers with (``persys.httpedge``):
a bad body or query answers 400 naming the problem, and only a fault of the agent's own is a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from opentelemetry import context as otel_context
from prometheus_client import Counter

from persys.agentd.events import EventHub
from persys.agentd.executor import Executor
from persys.agentd.runtime import Runtime, WorkloadSpec
from persys.errors import BadRequest, Conflict, NotFound, PersysError, Unauthorized
from persys.httpedge import error_middleware, read_json
from persys.observability import metrics
from persys.observability.logging import bound, get_logger
from persys.observability.tracing import extract, tracer
from persys.resources.model import now_iso
from persys.security.hmac import Verifier

UNSIGNED = frozenset({"/healthz", "/metrics"})
ACTIONS = ("stop", "start", "restart")
MAX_BODY = 4 * 1024 * 1024
KEEPALIVE_SECONDS = 15.0
MAX_OPERATION_WAIT = 60.0
MAX_TAIL = 10_000  # the most log lines one request may ask for (the API's limit too)

SIGNED = Counter("persys_agent_signed_requests_total", "Signed requests by node, key id and result",
                 ["node", "key", "result"])  # result accepted (by key id) or refused (key "": any, even made up)

log = get_logger("agent")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def signed(verifier: Verifier, node: str = "") -> Middleware:
    """The middleware that continues the caller's trace and refuses unsigned requests (401)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = otel_context.attach(extract(request.headers))
        try:
            route = request.match_info.route.resource
            name = route.canonical if route is not None else request.path
            with tracer("persys.agent").start_as_current_span(f"agent {request.method} {name}"), \
                    bound(node=node, uid=request.match_info.get("uid")):
                if request.path not in UNSIGNED:
                    body = await request.read()
                    try:
                        key = verifier.verify(request.method, request.raw_path, body,
                                              request.headers.get("Authorization"))
                    except Unauthorized:
                        SIGNED.labels(node, "", "refused").inc()
                        raise
                    SIGNED.labels(node, key, "accepted").inc()
                return await handler(request)
        finally:
            otel_context.detach(token)
    return middleware


class AgentApi:
    """The route handlers, bound to one node's runtime, executor and event hub."""

    def __init__(self, node: str, runtime: Runtime, executor: Executor, hub: EventHub) -> None:
        self.node = node
        self.runtime = runtime
        self.executor = executor
        self.hub = hub

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics),
            web.get("/v1/workloads", self.list),
            web.get("/v1/workloads/{uid}", self.get),
            web.post("/v1/workloads/{uid}", self.apply),
            web.delete("/v1/workloads/{uid}", self.remove),
            web.post("/v1/workloads/{uid}/{action}", self.action),
            web.get("/v1/workloads/{uid}/logs", self.logs),
            web.get("/v1/events", self.events),
            web.get("/v1/operations/{id}", self.operation),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node": self.node, "runtime": self.runtime.name})

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def list(self, request: web.Request) -> web.Response:
        return web.json_response({"items": [s.to_dict() for s in await self.runtime.list()]})

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response((await self.runtime.get(request.match_info["uid"])).to_dict())

    def _queued(self, uid: str, action: str, work: Callable[[], Awaitable[Any]]) -> web.Response:
        op = self.executor.submit(uid, action, work)
        return web.json_response({"status": "queued", "operation": op.id}, status=202)

    async def apply(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        workload = WorkloadSpec.from_body(uid, await read_json(request, "body"))
        bound_to = workload.spec.get("nodeName")
        if bound_to and bound_to != self.node:
            raise Conflict(f"workload {uid} is bound to node {bound_to!r}, this is node {self.node!r}")
        return self._queued(uid, "apply", lambda: self.runtime.apply(workload))

    async def _known(self, uid: str) -> None:
        """NotFound unless the uid runs here or an operation on it (an apply) is queued."""
        if not self.executor.pending(uid):
            await self.runtime.get(uid)

    async def action(self, request: web.Request) -> web.Response:
        uid, action = request.match_info["uid"], request.match_info["action"]
        if action not in ACTIONS:
            raise NotFound(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        await self._known(uid)
        work: Callable[[str], Awaitable[Any]] = getattr(self.runtime, action)
        return self._queued(uid, action, lambda: work(uid))

    async def remove(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        await self._known(uid)
        return self._queued(uid, "remove", lambda: self.runtime.remove(uid))

    async def operation(self, request: web.Request) -> web.Response:
        op_id = request.match_info["id"]
        wait = _seconds(request.query.get("wait", "0"), "wait")
        op = await self.executor.wait(op_id, min(wait, MAX_OPERATION_WAIT)) if wait > 0 \
            else self.executor.get(op_id)
        return web.json_response(op.to_dict())

    async def logs(self, request: web.Request) -> web.StreamResponse:
        uid = request.match_info["uid"]
        tail = _count(request.query.get("tail", "50"), "tail", MAX_TAIL)
        if request.query.get("follow") not in ("1", "true"):
            return web.Response(text=await self.runtime.logs(uid, tail))
        await self.runtime.get(uid)
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the reader went away
            async with aclosing(self.runtime.follow_logs(uid, tail)) as chunks:  # stops `docker logs -f`
                async for chunk in chunks:
                    await response.write(chunk.encode())
            await response.write_eof()
        return response

    async def events(self, request: web.Request) -> web.StreamResponse:
        """ndjson: the current state of every workload, then every change as it happens."""
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        with self.hub.subscription() as queue, contextlib.suppress(ConnectionResetError):  # the reader went away
            await response.prepare(request)
            try:
                snapshot = await self.runtime.list()
            except PersysError as e:  # the stream still reports changes once the runtime is back
                log.warning("no state snapshot for an event subscriber", node=self.node, error=e.message)
                snapshot = []
            for state in snapshot:
                await response.write(_line({"type": "state", "time": now_iso(), **state.to_dict()}))
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):  # not wait_for: it can swallow a cancel
                        event = await queue.get()
                except TimeoutError:
                    await response.write(b"\n")  # finds dead readers; clients skip blank lines
                    continue
                if event is None:
                    break
                await response.write(_line(event))
            await response.write_eof()
        return response


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def _seconds(text: str, name: str) -> float:
    """A query parameter in seconds: a finite number, not negative."""
    try:
        value = float(text)
    except ValueError as e:
        raise BadRequest(f"{name} must be a number of seconds, not {text!r}") from e
    if not math.isfinite(value) or value < 0:
        raise BadRequest(f"{name} must be a finite, non-negative number of seconds, not {text!r}")
    return value


def _count(text: str, name: str, maximum: int) -> int:
    """A query parameter that counts something: an integer from 0 to ``maximum``, in ASCII digits."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)) or int(text) > maximum:
        raise BadRequest(f"{name} must be an integer 0-{maximum}, not {text[:40]!r}")
    return int(text)


def make_app(node: str, runtime: Runtime, executor: Executor, hub: EventHub, verifier: Verifier) -> web.Application:
    errors = error_middleware(log, lambda request: f"no route {request.method} {request.path}")
    app = web.Application(middlewares=[errors, signed(verifier, node)], client_max_size=MAX_BODY)
    app.add_routes(AgentApi(node, runtime, executor, hub).routes())
    return app
