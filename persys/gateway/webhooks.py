"""``POST /webhooks/github``: a push to a branch redeploys the workloads built from it.

A repository's webhook secret is a Secret in the gateway's namespace (``persys-gateway``), labelled
``persys.dev/webhook=github``, with ``repository`` (``owner/name``), ``secret`` and ``namespaces``
(comma-separated, or ``*``): the namespaces whose workloads its pushes may redeploy. A delivery is
checked in this order, each failure answered with its own code:

1. the body at most 25 MB (413), the ``X-GitHub-Event`` and ``X-GitHub-Delivery`` headers (400),
   JSON with a ``repository.full_name`` (400);
2. ``X-Hub-Signature-256`` against that repository's secret, in constant time (401 when absent,
   wrong, or no secret is kept for the repository);
3. the delivery id recorded once (a ``WebhookDelivery`` created through the API, on a 3-day lease:
   create-if-absent, so a redelivery or a replay answers 200 and does nothing);
4. ``ping`` answers 200; a ``push`` to a branch sets the pushed commit as ``spec.compose.revision``
   of every compose workload built from that repository and branch (``persys.client.revisions``),
   200 naming them, or 202 saying no workload follows it; other events and tag pushes answer 202.

The gateway only records what is wanted; the reconciler and the agent redeploy (fetch that
commit, build when the compose file says so, bring it up), so the answer comes in milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aiohttp import web

from persys.client.api import ApiClient
from persys.client.revisions import request_revision
from persys.errors import BadRequest, Conflict, TooLarge, Unauthorized
from persys.gateway.config import SESSIONS_NAMESPACE
from persys.observability.logging import get_logger
from persys.resources.model import ObjectMeta, Resource, now_iso

log = get_logger("gateway.webhooks")

MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
LABEL = "persys.dev/webhook"
ZERO = "0" * 40  # the "after" of a push that deleted the branch


def signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` of ``body`` under ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def repository_urls(repository: dict[str, Any]) -> set[str]:
    """Every URL GitHub gives for the repository (workloads name one of them)."""
    return {str(repository[k]) for k in ("clone_url", "html_url", "git_url", "ssh_url", "svn_url", "url")
            if isinstance(repository.get(k), str) and repository[k]}


class GitHubWebhooks:
    """The webhook route, reading secrets and writing through the API as the gateway."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/webhooks/github", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await _body(request)
        event = request.headers.get("X-GitHub-Event", "")
        delivery = request.headers.get("X-GitHub-Delivery", "").strip().lower()
        if not event or not delivery:
            raise BadRequest("X-GitHub-Event and X-GitHub-Delivery headers are required")
        try:
            payload = json.loads(body)
        except ValueError as e:
            raise BadRequest(f"the payload is not JSON: {e}") from None
        repository = payload.get("repository") if isinstance(payload, dict) else None
        full_name = repository.get("full_name") if isinstance(repository, dict) else None
        if not isinstance(repository, dict) or not isinstance(full_name, str) or not full_name:
            raise BadRequest("the payload has no repository.full_name")
        hook = await self._verify(full_name, body, request.headers.get("X-Hub-Signature-256", ""))
        if not await self._first_delivery(delivery, event, full_name):
            return web.json_response({"delivery": delivery, "duplicate": True, "message": "already received"})
        if event == "ping":
            return web.json_response({"delivery": delivery, "message": "pong", "repository": full_name})
        if event != "push":
            return web.json_response({"delivery": delivery, "message": f"{event} events are not acted on"},
                                     status=202)
        return await self._push(delivery, payload, repository, hook)

    async def _verify(self, full_name: str, body: bytes, given: str) -> Resource:
        """The webhook Secret of ``full_name`` whose secret signed ``body``; Unauthorized otherwise."""
        if not given:
            raise Unauthorized("X-Hub-Signature-256 is missing: deliveries must be signed with the webhook's secret")
        hooks, _ = await self.client.list("Secret", SESSIONS_NAMESPACE, selector=f"{LABEL}=github")
        candidates = [h for h in hooks if str(h.spec.get("repository", "")).lower() == full_name.lower()]
        if not candidates:
            raise Unauthorized(f"no webhook secret is kept for {full_name} (a Secret in {SESSIONS_NAMESPACE} "
                               f"labelled {LABEL}=github)")
        for hook in candidates:  # compare_digest: as long for a wrong signature as for a right one
            if hmac.compare_digest(signature(str(hook.spec.get("secret", "")), body), given):
                return hook
        raise Unauthorized(f"X-Hub-Signature-256 does not match the secret kept for {full_name}")

    async def _first_delivery(self, delivery: str, event: str, full_name: str) -> bool:
        record = Resource(kind="WebhookDelivery", metadata=ObjectMeta(name=delivery, namespace=SESSIONS_NAMESPACE),
                          spec={"source": "github", "event": event, "repository": full_name,
                                "receivedAt": now_iso()})
        try:
            await self.client.create(record)
        except Conflict:
            log.info("duplicate delivery", delivery=delivery, repository=full_name)
            return False
        return True

    async def _push(self, delivery: str, payload: dict[str, Any], repository: dict[str, Any],
                    hook: Resource) -> web.Response:
        ref, after = str(payload.get("ref", "")), str(payload.get("after", ""))
        full_name = str(repository["full_name"])
        if not ref.startswith("refs/heads/"):
            return web.json_response({"delivery": delivery, "message": f"{ref} is not a branch"}, status=202)
        branch = ref.removeprefix("refs/heads/")
        if after == ZERO or payload.get("deleted"):
            return web.json_response({"delivery": delivery, "message": f"branch {branch} deleted"}, status=202)
        namespaces = [n.strip() for n in str(hook.spec.get("namespaces", "")).split(",") if n.strip()]
        updated = await request_revision(self.client, repository_urls(repository), branch, after,
                                         default_branch=str(repository.get("default_branch") or ""),
                                         namespaces=None if "*" in namespaces else namespaces)
        log.info("push", delivery=delivery, repository=full_name, branch=branch, revision=after,
                 workloads=len(updated))
        if not updated:
            return web.json_response({"delivery": delivery, "message": f"no workload follows {full_name} "
                                      f"branch {branch} in {', '.join(namespaces) or 'no namespace'}"}, status=202)
        return web.json_response({"delivery": delivery, "revision": after, "updated": updated})


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise TooLarge(f"the payload is {request.content_length} bytes; at most {MAX_BODY} are accepted")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge(f"the payload exceeds {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
