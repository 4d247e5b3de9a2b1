"""``GET …/workloads/{name}/log``: a workload's container logs, fetched from its node's agent.

The API is the one door for users, so ``persys logs`` goes through it (mTLS, roles) and the
API server calls the agent with the HMAC keyring's signing key, like the controllers do. The request is signed
for the workload's node and, to an agent serving https, sent only once the agent has presented
that node's certificate, signed by the same cluster CA the API's own mTLS listener trusts: a node
that registered another node's address, or captured a request meant for another node, gets
nothing it can use.
"""

from __future__ import annotations

from aiohttp import web

from persys.agentclient import AgentClient
from persys.api import openapi
from persys.api.app import PREFIX
from persys.api.auth import FULL_ACCESS, allow
from persys.api.context import api_context
from persys.api.permission import permit
from persys.errors import BadRequest, NotFound, Unavailable
from persys.httpedge import is_digits
from persys.resources.kinds import WORKLOAD
from persys.security.pki import GATEWAY

MAX_TAIL = 10_000


def _tail(request: web.Request) -> int:
    raw = request.query.get("tailLines", "100")
    if not is_digits(raw) or not 0 <= int(raw) <= MAX_TAIL:
        raise BadRequest(f"tailLines must be an integer 0-{MAX_TAIL}, not {raw!r}")
    return int(raw)


def cluster_ca(request: web.Request) -> bytes | None:
    """The CA certificates (DER) the mTLS listener this request came in on trusts: the cluster CA."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
    if ssl_object is None:
        return None
    return b"".join(ssl_object.context.get_ca_certs(binary_form=True)) or None


async def _agent_for(request: web.Request) -> tuple[AgentClient, str]:
    ctx = api_context(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    await permit(request, "get", WORKLOAD, namespace, name, "log")
    workload = await ctx.store.get("Workload", namespace, name)
    node_name = workload.status.get("nodeName") or workload.spec.get("nodeName")
    if not node_name:
        raise BadRequest(f'workload "{workload.metadata.name}" is not scheduled to a node yet: it has no logs')
    try:
        await ctx.hmac_keys.refresh()  # etcd's keyring now: this server may have started with an older one
    except NotFound as e:
        raise Unavailable(f"this API server has no agent HMAC secret; it cannot reach agents: {e.message}") from e
    node = await ctx.store.get("Node", "", node_name)
    address = str(node.spec.get("address") or "")
    agent = AgentClient.for_node(node.metadata.name, address, ctx.hmac_keys.signing, ca=cluster_ca(request))
    return agent, workload.metadata.uid


@allow(*FULL_ACCESS, GATEWAY)
@openapi.query(tailLines=f"the last lines to send, 0-{MAX_TAIL} (default 100)",
               follow="true: keep the stream open and send new lines as they come")
async def workload_log(request: web.Request) -> web.StreamResponse:
    """The last ``tailLines`` lines; with ``follow=true`` a text stream that follows new lines."""
    tail = _tail(request)
    follow = request.query.get("follow", "").lower() in ("1", "true", "yes")
    agent, uid = await _agent_for(request)
    try:
        if not follow:
            return web.Response(text=await agent.logs(uid, tail=tail), content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        async for line in agent.follow_logs(uid, tail=tail):
            await response.write(line.encode() if line.endswith("\n") else (line + "\n").encode())
        await response.write_eof()
        return response
    finally:
        await agent.close()


def add_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/namespaces/{namespace}/workloads/{name}/log", workload_log)
