"""The join kinds: ``BootstrapToken`` and ``CertificateSigningRequest`` (both cluster-scoped).

A BootstrapToken is named by its id and holds only the hash of its secret (``persys.security.bootstrap``),
its expiry and what a node joining with it may ask for: the roles (``agents``), the node names (none
listed: any) and the addresses its certificate may name besides loopback and the address its request
came from. Expired tokens are deleted by the ``token-cleaner`` controller.

A CertificateSigningRequest carries a PEM request and the role it asks for; the API fills in who asked
(``username``: ``system:bootstrap:<token id>`` or a certificate's identity), the ``token`` and the
``sourceAddress`` the request came from, so the signer judges facts, not claims. Its status holds the
decision (a condition ``Approved`` or ``Denied`` with reason and message) and the signed ``certificate``.
CSRs are stored on an etcd lease: each is gone a day after its last change, as Kubernetes cleans them.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any

from persys.errors import Cause
from persys.resources.columns import age
from persys.resources.model import Resource
from persys.resources.registry import Kind
from persys.resources.schema import Schema

_STRING: Schema = {"type": "string"}
_TIME: Schema = {"type": "string", "nullable": True}
TOKEN_ID = re.compile(r"[a-z0-9]{6}")  # persys.security.bootstrap's format (resources may not import it)
ROLES = ("admins", "agents", "controllers", "operators", "gateway")  # persys.security.pki's roles
TOKEN_ROLES = ("agents",)  # what a bootstrap token may give: a node's identity, nothing more
APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
TRACEPARENT = "persys.dev/traceparent"  # the trace a CSR's creation belongs to; the signer's span joins it
CSR_LIFETIME = 86400  # seconds a CSR is kept after its last change
MAX_REQUEST = 16 * 1024

BOOTSTRAP_TOKEN_SPEC: Schema = {"type": "object", "properties": {
    "secretHash": {"type": "string", "pattern": r"sha256:[0-9a-f]{64}",
                   "patternMessage": "must be sha256: and 64 hex digits (the hash of the token's secret)"},
    "expires": {"type": "string"},
    "description": {"type": "string", "format": "text", "default": ""},
    "roles": {"type": "array", "items": {"type": "string", "enum": list(TOKEN_ROLES)}, "default": ["agents"]},
    "nodeNames": {"type": "array", "items": {"type": "string", "format": "dns1123"}, "default": []},
    "addresses": {"type": "array", "items": {"type": "string"}, "default": []},
}, "required": ["secretHash", "expires"]}

CSR_SPEC: Schema = {"type": "object", "properties": {
    "request": {"type": "string"},
    "role": {"type": "string", "enum": [*ROLES, "servers"], "default": "agents"},  # servers: the API's renewals
    "username": {"type": "string", "default": ""},
    "token": {"type": "string", "default": ""},
    "sourceAddress": {"type": "string", "default": ""},
    # a node renewing its certificate: the identity it authenticated with (set by the API)
    "requester": {"type": "object", "properties": {"role": {"type": "string"}, "sans": {"type": "array",
                                                    "items": {"type": "string"}}}},
}, "required": ["request"]}

CSR_STATUS: Schema = {"type": "object", "properties": {
    "conditions": {"type": "array", "items": {"type": "object", "properties": {
        "type": {"type": "string", "enum": [APPROVED, DENIED, FAILED]},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": _STRING, "message": _STRING, "lastTransitionTime": _TIME,
    }, "required": ["type", "status"]}},
    "certificate": _STRING,
}}


def _token_name(name: str) -> str | None:
    return None if TOKEN_ID.fullmatch(name) else "must be a token id: 6 characters of a-z and 0-9"


def _token_checks(spec: dict[str, Any]) -> list[Cause]:
    causes = []
    try:
        datetime.fromisoformat(spec["expires"].replace("Z", "+00:00"))
    except ValueError:
        causes.append(Cause("spec.expires", "must be an RFC 3339 time (2026-01-02T03:04:05Z)"))
    for i, address in enumerate(spec.get("addresses") or []):
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            causes.append(Cause(f"spec.addresses[{i}]", f"{address!r} is not an IP address or network (10.0.0.0/8)"))
    return causes


def _csr_checks(spec: dict[str, Any]) -> list[Cause]:
    request = spec["request"]
    if len(request) > MAX_REQUEST:
        return [Cause("spec.request", f"must be at most {MAX_REQUEST} characters")]
    if "-----BEGIN CERTIFICATE REQUEST-----" not in request:
        return [Cause("spec.request", "must be a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)")]
    return []


def condition_of(csr: Resource) -> str:
    """Pending, Approved, Approved,Issued, Denied or Failed: what ``persys get csr`` shows."""
    types = [c.get("type") for c in csr.status.get("conditions") or [] if c.get("status") == "True"]
    for final in (DENIED, FAILED):
        if final in types:
            return final
    if APPROVED in types:
        return "Approved,Issued" if csr.status.get("certificate") else APPROVED
    return "Pending"


BOOTSTRAP_TOKEN = Kind(
    kind="BootstrapToken", plural="bootstraptokens", namespaced=False, short_names=("token", "tokens", "bt"),
    description="A token a new node joins with (`persys token create`); only the hash of its secret is kept.",
    spec_schema=BOOTSTRAP_TOKEN_SPEC, status_subresource=False, name_check=_token_name,
    cross_checks=(_token_checks,),
    columns=(
        ("ID", lambda o: o.metadata.name),
        ("EXPIRES", lambda o: str(o.spec.get("expires", ""))),
        ("ROLES", lambda o: ",".join(o.spec.get("roles") or [])),
        ("NODES", lambda o: ",".join(o.spec.get("nodeNames") or []) or "<any>"),
        ("DESCRIPTION", lambda o: str(o.spec.get("description", ""))),
    ),
)

CERTIFICATE_SIGNING_REQUEST = Kind(
    kind="CertificateSigningRequest", plural="certificatesigningrequests", namespaced=False,
    short_names=("csr", "csrs"), lease_ttl=CSR_LIFETIME,
    description="A request for a certificate of the cluster CA (a node joining); the csr-signer approves "
                "and signs it, or denies it with the reason.",
    spec_schema=CSR_SPEC, status_schema=CSR_STATUS, cross_checks=(_csr_checks,),
    columns=(
        ("NAME", lambda o: o.metadata.name),
        ("REQUESTOR", lambda o: str(o.spec.get("username", ""))),
        ("ROLE", lambda o: str(o.spec.get("role", ""))),
        ("CONDITION", condition_of),
        ("AGE", age),
    ),
)
