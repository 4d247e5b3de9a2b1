"""What the csr-signer does with one CertificateSigningRequest, as a pure function over a table of cases.

``decide(csr, info, token, node, now)`` looks at the request (``info``: what its PEM asks for, None when
it does not parse), the BootstrapToken it came with (None: deleted, or no token) and the Node of the name
it asks for, and answers one ``Decision``: nothing to do (already issued or denied), wait (no token: an
admin approves or denies by hand), deny (with a reason and a message an admin can act on), or sign.

A request is judged in this order, and the first problem denies it:
1. it must parse, its self-signature must verify, and its key must not be weak (RSA under 2048 bits):
   whoever approved it;
2. its CN must be a name for the role (a node name, a DNS-1123 label, for agents); an O, when given,
   must be the role's;
3. approved already (by hand, ``persys certificate approve``): sign, as asked;
4. a component renewing its own certificate (no token; the API recorded the requester): the role asked for
   must be the requester's, the CN its own, and every SAN one of its current certificate's (an agent's
   may also be its own as in 5). Approve, reason ``Renewal``; a Ready Node of an agent's name is itself;
5. from a token: the token must still exist and be unexpired, allow the role, allow the node name, and
   every SAN must be the node's own (its name, ``localhost``, a loopback address, the address the request
   came from, or an address within the token's ``addresses``); a Node of that name that is Ready must
   not exist (another machine holds that name). Then: approve and sign.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from persys.controllers.conditions import get_condition, node_ready
from persys.resources.certificates import APPROVED, DENIED, FAILED
from persys.resources.model import Resource
from persys.resources.schema import check_dns1123
from persys.runtime.clock import from_iso
from persys.security.csr import RequestInfo, weak_key

LOCAL_NAMES = frozenset({"localhost"})


class Action(StrEnum):
    NONE = "none"  # issued or denied already
    WAIT = "wait"  # pending manual approval
    DENY = "deny"
    SIGN = "sign"  # approved (now or before): sign it


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    message: str = ""
    auto_approved: bool = False  # SIGN: the approval is this decision's (write the Approved condition too)
    sans: tuple[str, ...] = ()  # SIGN: the names and addresses the certificate serves


def _true(csr: Resource, type_: str) -> bool:
    cond = get_condition(csr.status, type_)
    return cond is not None and cond.get("status") == "True"


def deny(reason: str, message: str) -> Decision:
    return Decision(Action.DENY, reason, message)


def decide(csr: Resource, info: RequestInfo | None, token: Resource | None, node: Resource | None,
           now: float) -> Decision:
    """What to do with ``csr`` now (see the module docstring for the order of the checks)."""
    if csr.status.get("certificate") or _true(csr, DENIED) or _true(csr, FAILED):
        return Decision(Action.NONE)
    if info is None:
        return deny("InvalidRequest", "spec.request is not a PEM certificate request")
    if not info.signature_valid:
        return deny("InvalidRequest", "the request's signature does not verify")
    if problem := weak_key(info):
        return deny("WeakKey", problem)
    role = str(csr.spec.get("role") or "agents")
    if problem := _subject_problem(info, role):
        return deny("BadSubject", problem)
    sans = tuple(dict.fromkeys((info.common_name,) + info.sans)) if role == "agents" else info.sans
    if _true(csr, APPROVED):
        return Decision(Action.SIGN, sans=sans)
    token_id = str(csr.spec.get("token") or "")
    requester = csr.spec.get("requester") or {}
    if not token_id and requester:
        return _renewal(csr, info, role, requester, sans)
    if not token_id:
        return Decision(Action.WAIT, "AwaitingApproval", "no bootstrap token: `persys certificate approve|deny`")
    if refused := _token_problem(token_id, token, role, info.common_name, now):
        return deny(*refused)
    assert token is not None
    for san in info.sans:
        if problem := _san_problem(san, info.common_name, str(csr.spec.get("sourceAddress") or ""), token):
            return deny("SanNotAllowed", problem)
    if node_ready(node):
        return deny("NodeExists", f"node {info.common_name!r} exists and is Ready: another machine has that name; "
                                  f"join with another --name, or delete the Node first (persys delete node "
                                  f"{info.common_name})")
    return Decision(Action.SIGN, "AutoApproved", f"bootstrap token {token_id!r} allows node "
                    f"{info.common_name!r} with role {role}", auto_approved=True, sans=sans)


def _renewal(csr: Resource, info: RequestInfo, role: str, requester: dict[str, Any],
             sans: tuple[str, ...]) -> Decision:
    asker, name = str(csr.spec.get("username") or ""), info.common_name
    if requester.get("role") != f"persys:{role}":
        return deny("RenewalMismatch", f"{asker!r} holds role {requester.get('role')!r} and may renew only that "
                                       f"role's certificate, not one for role {role}")
    if asker != name:
        return deny("RenewalMismatch", f"{asker!r} may renew only its own certificate, not one for {name!r}")
    held = set(requester.get("sans") or [])
    source = str(csr.spec.get("sourceAddress") or "")
    for san in info.sans:
        if san in held:
            continue
        if role != "agents":
            return deny("SanNotAllowed", f"{san!r} is not in the certificate being renewed: a renewal keeps its "
                                         "names; ask an admin for a new certificate (persys pki issue)")
        if problem := _san_problem(san, name, source, None):
            return deny("SanNotAllowed", problem)
    return Decision(Action.SIGN, "Renewal", f"{role} {name!r} renews its own certificate", auto_approved=True,
                    sans=sans)


def _subject_problem(info: RequestInfo, role: str) -> str | None:
    if not info.common_name:
        return "the request has no CN (the identity the certificate is for)"
    if role == "agents" and (msg := check_dns1123(info.common_name)):
        return f"CN {info.common_name!r} is not a node name: {msg}"
    if info.organization and info.organization != f"persys:{role}":
        return f"the request's O {info.organization!r} does not match role {role} (persys:{role})"
    return None


def _token_problem(token_id: str, token: Resource | None, role: str, node: str,
                   now: float) -> tuple[str, str] | None:
    if token is None:
        return "TokenRevoked", f"bootstrap token {token_id!r} no longer exists (deleted or expired)"
    expires = from_iso(str(token.spec.get("expires") or ""))
    if expires is None or expires <= now:
        return "TokenExpired", f"bootstrap token {token_id!r} expired at {token.spec.get('expires')}"
    roles: list[Any] = token.spec.get("roles") or []
    if role not in roles:
        return "RoleNotAllowed", f"bootstrap token {token_id!r} allows role {', '.join(roles) or 'none'}, not {role}"
    nodes: list[Any] = token.spec.get("nodeNames") or []
    if nodes and node not in nodes:
        return "NodeNotAllowed", f"bootstrap token {token_id!r} allows nodes {', '.join(nodes)}, not {node!r}"
    return None


def _san_problem(san: str, node: str, source: str, token: Resource | None) -> str | None:
    try:
        address = ipaddress.ip_address(san)
    except ValueError:
        if san == node or san in LOCAL_NAMES:
            return None
        return f"DNS name {san!r} is neither the node's name ({node!r}) nor localhost"
    if address.is_loopback or san == source:
        return None
    for network in token.spec.get("addresses") or [] if token is not None else []:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return None
        except ValueError:
            continue
    return (f"IP address {san} is neither loopback, nor the address the request came from ({source or 'unknown'}), "
            "nor in the token's addresses (persys token create --address)")
