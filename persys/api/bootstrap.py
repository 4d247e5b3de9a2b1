"""The routes a node without a certificate may call to join, and the one it calls once it has one.

- ``GET /cluster-info``: the CA bundle (and its hash) and the cluster id, to anyone. A joining node
  fetches it without trusting the server yet and checks the bundle against the hash it was given
  (``--ca-hash``) before it sends anything, its token included.
- ``POST /bootstrap/certificatesigningrequests``: creates a CertificateSigningRequest, authenticated by
  ``Authorization: Bearer <id>.<secret>`` (a BootstrapToken). The server, not the body, says who asked:
  ``username`` ``system:bootstrap:<id>``, ``token`` and the ``sourceAddress`` the request came from.
  A request that is not a certificate request, or whose key is too weak, is refused here (422).
- ``GET /bootstrap/certificatesigningrequests/{name}``: the same token reads the CSRs it created, and
  only those (any other name is a 404, whether it exists or not).
- ``GET /bootstrap/node-config``: for agents, over mTLS: the HMAC keyring the controllers sign their calls
  with (``hmacKeyring``; ``hmacKeyId`` and ``hmacSecret`` are its signing key now) and the cluster id, which
  a joined node needs to run as any other. Agents read it again every ``--hmac-refresh`` seconds to follow
  rotations.

A component renewing its certificate (an agent, the API server, the controllers, the gateway, an operator,
the CLI's admin) calls the same two CSR routes over mTLS with its current certificate and no token: the CSR
records it as ``username`` (its CN) and ``requester`` (its role and SANs), and it reads only the CSRs it
made; the csr-signer approves a component renewing its own certificate. A certificate without a Persys
role (no ``persys:`` O) is a 403.
An unknown (never created, or deleted: revoked), expired or malformed token, or a wrong secret, is a 401
saying which. These handlers are marked ``BOOTSTRAP``: the auth middleware lets them through without a
client certificate, and they authenticate the token themselves.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import Counter

from persys.api.auth import Identity, allow, identity
from persys.api.context import ApiContext, api_context
from persys.api.middleware import BOOTSTRAP
from persys.errors import Cause, Forbidden, Invalid, NotFound, Unauthorized, Unavailable
from persys.httpedge import read_json
from persys.observability import tracing
from persys.resources import Resource
from persys.resources.certificates import BOOTSTRAP_TOKEN, CERTIFICATE_SIGNING_REQUEST, TRACEPARENT
from persys.runtime.clock import from_iso
from persys.security import csr
from persys.security.bootstrap import (
    CLUSTER_INFO_PATH,
    CSR_PATH,
    NODE_CONFIG_PATH,
    TOKEN_FORMAT,
    ca_hashes,
    secret_matches,
    split_token,
)
from persys.security.pki import AGENTS, cert_identity
from persys.store.clusterid import CLUSTER_ID_KEY

BOOTSTRAP_USER = "system:bootstrap:"

TOKEN_AUTH = Counter("persys_bootstrap_token_auth_total", "Bootstrap token authentications by result", ["result"])


def ca_bundle_of(context: ssl.SSLContext) -> bytes:
    """The CA certificates a server context trusts for client certificates, as one PEM bundle."""
    return b"".join(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
                    for der in context.get_ca_certs(binary_form=True))


def _refuse(result: str, message: str) -> Unauthorized:
    TOKEN_AUTH.labels(result).inc()
    return Unauthorized(message)


async def authenticate(ctx: ApiContext, header: str, now: float | None = None) -> Resource:
    """The BootstrapToken ``header`` (``Bearer <id>.<secret>``) proves; Unauthorized saying why not."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _refuse("missing", "a bootstrap token is required: Authorization: Bearer <id>.<secret>")
    parts = split_token(token)
    if parts is None:
        raise _refuse("malformed", f"malformed bootstrap token: expected {TOKEN_FORMAT}")
    token_id, secret = parts
    try:
        stored = await ctx.store.get(BOOTSTRAP_TOKEN.kind, "", token_id)
    except NotFound:
        raise _refuse("unknown", f"bootstrap token {token_id!r} is unknown: never created, deleted (revoked) or "
                                 "expired and cleaned up; create another with `persys token create`") from None
    if not secret_matches(secret, str(stored.spec.get("secretHash", ""))):
        raise _refuse("wrong-secret", f"bootstrap token {token_id!r}: wrong secret")
    expires = from_iso(str(stored.spec.get("expires", "")))
    if expires is None or expires <= (time.time() if now is None else now):
        raise _refuse("expired", f"bootstrap token {token_id!r} expired at {stored.spec.get('expires')}")
    TOKEN_AUTH.labels("ok").inc()
    return stored


@dataclass(frozen=True)
class Asker:
    """Who calls a CSR route: a bootstrap token, or a component renewing its certificate (its CN, role and SANs)."""

    token: str = ""
    node: Identity | None = None
    sans: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"bootstrap token {self.token!r}" if self.token else f"node {self.node.name if self.node else ''!r}"

    def fields(self) -> dict[str, Any]:
        """What the server writes into a CSR's spec about who asked."""
        if self.token:
            return {"username": BOOTSTRAP_USER + self.token, "token": self.token}
        assert self.node is not None
        return {"username": self.node.name, "token": "", "requester": {"role": self.node.role, "sans": list(self.sans)}}

    def owns(self, csr_obj: Resource) -> bool:
        if self.token:
            return csr_obj.spec.get("token") == self.token
        requester = csr_obj.spec.get("requester") or {}
        return self.node is not None and not csr_obj.spec.get("token") and requester.get("role") == self.node.role \
            and csr_obj.spec.get("username") == self.node.name


async def asker(request: web.Request) -> Asker:
    """The token of a request that carries one; else the component whose certificate it shows (Forbidden for
    one without a Persys role); Unauthorized with neither."""
    ctx = api_context(request)
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if request.headers.get("Authorization") or not cert:
        return Asker(token=(await authenticate(ctx, request.headers.get("Authorization", ""))).metadata.name)
    who = Identity(*cert_identity(cert))
    if not who.role.startswith("persys:"):
        raise Forbidden(f"{who.name!r} (role {who.role or 'none'}): a certificate without a Persys role renews nothing")
    return Asker(node=who, sans=tuple(str(value) for _, value in cert.get("subjectAltName", ())))


@allow(BOOTSTRAP)
async def cluster_info(request: web.Request) -> web.Response:
    """The CA bundle, its hash and the cluster id: what a joining node checks before it trusts this server."""
    ctx = api_context(request)
    bundle = ctx.trusted_cas()
    if not bundle:
        raise Unavailable("this API server was started without its CA bundle")
    found = await ctx.etcd.get(CLUSTER_ID_KEY)
    return web.json_response({"kind": "ClusterInfo", "caBundle": bundle.decode(), "caHashes": ca_hashes(bundle),
                              "clusterId": found.value.decode() if found is not None else ""})


def _request_problem(pem: str) -> str | None:
    try:
        info = csr.inspect(pem)
    except csr.BadRequestPem as e:
        return str(e)
    if not info.signature_valid:
        return "the request's signature does not verify"
    return csr.weak_key(info)


@allow(BOOTSTRAP)
async def create_csr(request: web.Request) -> web.Response:
    """Create a CertificateSigningRequest for a bootstrap token or a renewing agent (201 with the stored object)."""
    ctx = api_context(request)
    who = await asker(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise Invalid("body must be a CertificateSigningRequest object", causes=[Cause("", "must be a mapping")])
    spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
    served: dict[str, Any] = {**body, "kind": CERTIFICATE_SIGNING_REQUEST.kind, "status": {}, "spec": {
        **{k: v for k, v in spec.items() if k != "requester"}, **who.fields(), "sourceAddress": request.remote or ""}}
    metadata = body.get("metadata")
    traceparent = tracing.inject({}).get("traceparent")
    if isinstance(metadata, dict) and traceparent:  # the signer's span joins this request's trace
        given = metadata.get("annotations")
        annotations: dict[str, Any] = given if isinstance(given, dict) else {}
        served["metadata"] = {**metadata, "annotations": {**annotations, TRACEPARENT: traceparent}}
    obj = CERTIFICATE_SIGNING_REQUEST.parse(served)
    if problem := _request_problem(str(obj.spec["request"])):
        raise Invalid(f"CertificateSigningRequest {obj.metadata.name!r} is invalid: spec.request: {problem}",
                      causes=[Cause("spec.request", problem)])
    created = ctx.stored(await ctx.store.create(obj))
    return web.json_response(CERTIFICATE_SIGNING_REQUEST.to_wire(created), status=201)


@allow(BOOTSTRAP)
async def get_csr(request: web.Request) -> web.Response:
    """A CSR this request's bootstrap token (or renewing agent) created (404 for any other)."""
    ctx = api_context(request)
    who = await asker(request)
    name = request.match_info["name"]
    missing = NotFound(f'certificatesigningrequest "{name}" not found for {who.describe()}')
    try:
        found = await ctx.store.get(CERTIFICATE_SIGNING_REQUEST.kind, "", name)
    except NotFound:
        raise missing from None
    if not who.owns(found):
        raise missing
    return web.json_response(CERTIFICATE_SIGNING_REQUEST.to_wire(found))


@allow(AGENTS)
async def node_config(request: web.Request) -> web.Response:
    """What a joined node needs besides its certificate: the agents' HMAC keyring and the cluster id."""
    ctx = api_context(request)
    identity(request)
    try:
        keyring = await ctx.hmac_keys.refresh()
    except NotFound as e:
        raise Unavailable(f"this API server was started without the agents' HMAC secret: {e.message}") from e
    signing = keyring.signing(time.time())
    found = await ctx.etcd.get(CLUSTER_ID_KEY)
    return web.json_response({"kind": "NodeConfig", "hmacKeyId": signing.id, "hmacSecret": signing.secret.decode(),
                              "hmacKeyring": keyring.to_dict(),
                              "clusterId": found.value.decode() if found is not None else ""})


ROUTES = [
    ("GET", CLUSTER_INFO_PATH, cluster_info),
    ("POST", CSR_PATH, create_csr),
    ("GET", CSR_PATH + "/{name}", get_csr),
    ("GET", NODE_CONFIG_PATH, node_config),
]
