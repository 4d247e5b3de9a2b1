"""The csr-signer's decision table (``persys.controllers.csrdecisions.decide``), row by row."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from persys.controllers.csrdecisions import Action, decide
from persys.resources import REGISTRY, Resource
from persys.runtime.clock import to_iso
from persys.security import csr

NOW = 1_800_000_000.0
EC_KEY = csr.new_key()
WEAK_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
STRONG_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def request(cn: str = "n2", sans: tuple[str, ...] = ("n2", "localhost", "127.0.0.1"), org: str = "persys:agents",
            key: Any = EC_KEY) -> str:
    return csr.new_request(key, cn, org, sans).decode()


def signing_request(pem: str | None = None, *, role: str = "agents", token: str = "abcdef",
                    source: str = "127.0.0.1", conditions: list[dict[str, str]] | None = None,
                    certificate: str = "") -> Resource:
    obj = REGISTRY.parse({"kind": "CertificateSigningRequest", "metadata": {"name": "n2-abc"}, "spec": {
        "request": pem or request(), "role": role, "token": token, "sourceAddress": source,
        "username": f"system:bootstrap:{token}" if token else "admin"}})
    obj.status = {"conditions": conditions or [], **({"certificate": certificate} if certificate else {})}
    return obj


def token(*, expires: float = NOW + 3600, roles: tuple[str, ...] = ("agents",), nodes: tuple[str, ...] = (),
          addresses: tuple[str, ...] = ()) -> Resource:
    return REGISTRY.parse({"kind": "BootstrapToken", "metadata": {"name": "abcdef"}, "spec": {
        "secretHash": "sha256:" + "0" * 64, "expires": to_iso(expires), "roles": list(roles),
        "nodeNames": list(nodes), "addresses": list(addresses)}})


def node(ready: bool) -> Resource:
    obj = REGISTRY.parse({"kind": "Node", "metadata": {"name": "n2"}, "spec": {}})
    obj.status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return obj


APPROVED = [{"type": "Approved", "status": "True", "reason": "ApprovedByAdmin", "message": ""}]
DENIED = [{"type": "Denied", "status": "True", "reason": "DeniedByAdmin", "message": ""}]

ROWS: list[tuple[str, Resource, Resource | None, Resource | None, Action, str]] = [
    ("token allows it", signing_request(), token(), None, Action.SIGN, "AutoApproved"),
    ("node exists but NotReady (re-join)", signing_request(), token(), node(False), Action.SIGN, "AutoApproved"),
    ("strong RSA key", signing_request(request(key=STRONG_RSA)), token(), None, Action.SIGN, "AutoApproved"),
    ("already issued", signing_request(certificate="x"), token(), None, Action.NONE, ""),
    ("already denied", signing_request(conditions=DENIED), token(), None, Action.NONE, ""),
    ("no token: waits for an admin", signing_request(token=""), None, None, Action.WAIT, "AwaitingApproval"),
    ("approved by hand, no token", signing_request(token="", conditions=APPROVED), None, None, Action.SIGN, ""),
    ("approved by hand, role the token lacks", signing_request(role="operators", conditions=APPROVED,
                                                               pem=request(org="")), token(), None, Action.SIGN, ""),
    ("weak RSA key, even approved", signing_request(request(key=WEAK_KEY), conditions=APPROVED), token(), None,
     Action.DENY, "WeakKey"),
    ("token deleted", signing_request(), None, None, Action.DENY, "TokenRevoked"),
    ("token expired", signing_request(), token(expires=NOW - 1), None, Action.DENY, "TokenExpired"),
    ("role the token does not allow", signing_request(role="admins", pem=request(org="persys:admins")), token(),
     None, Action.DENY, "RoleNotAllowed"),
    ("O of another role", signing_request(request(org="persys:admins")), token(), None, Action.DENY, "BadSubject"),
    ("CN not a node name", signing_request(request(cn="Not_A_Node", sans=())), token(), None, Action.DENY,
     "BadSubject"),
    ("no CN", signing_request(request(cn="", sans=())), token(), None, Action.DENY, "BadSubject"),
    ("node name the token does not allow", signing_request(), token(nodes=("n3",)), None, Action.DENY,
     "NodeNotAllowed"),
    ("node name the token allows", signing_request(), token(nodes=("n2",)), None, Action.SIGN, "AutoApproved"),
    ("IP SAN from elsewhere", signing_request(request(sans=("n2", "10.1.2.3"))), token(), None, Action.DENY,
     "SanNotAllowed"),
    ("IP SAN = where the request came from", signing_request(request(sans=("n2", "10.1.2.3")), source="10.1.2.3"),
     token(), None, Action.SIGN, "AutoApproved"),
    ("IP SAN within the token's addresses", signing_request(request(sans=("n2", "10.1.2.3"))),
     token(addresses=("10.1.0.0/16",)), None, Action.SIGN, "AutoApproved"),
    ("DNS SAN of another host", signing_request(request(sans=("n2", "api.example.com"))), token(), None,
     Action.DENY, "SanNotAllowed"),
    ("a Ready node of that name exists", signing_request(), token(), node(True), Action.DENY, "NodeExists"),
]


@pytest.mark.parametrize(("csr_obj", "token_obj", "node_obj", "action", "reason"),
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_decision(csr_obj: Resource, token_obj: Resource | None, node_obj: Resource | None, action: Action,
                  reason: str) -> None:
    info = csr.inspect(csr_obj.spec["request"])
    decision = decide(csr_obj, info, token_obj, node_obj, NOW)
    assert (decision.action, decision.reason) == (action, reason), decision.message


def test_unparsable_request_is_denied() -> None:
    decision = decide(signing_request(), None, token(), None, NOW)
    assert (decision.action, decision.reason) == (Action.DENY, "InvalidRequest")


def test_signed_sans_are_the_node_name_and_its_addresses() -> None:
    obj = signing_request(request(sans=("localhost", "10.1.2.3")), source="10.1.2.3")
    decision = decide(obj, csr.inspect(obj.spec["request"]), token(), None, NOW)
    assert decision.action == Action.SIGN and decision.sans == ("n2", "localhost", "10.1.2.3")


def test_denial_messages_name_what_to_do() -> None:
    obj = signing_request(request(sans=("n2", "10.9.9.9")))
    decision = decide(obj, csr.inspect(obj.spec["request"]), token(), None, NOW)
    assert "10.9.9.9" in decision.message and "--address" in decision.message
    decision = decide(signing_request(), csr.inspect(signing_request().spec["request"]), token(), node(True), NOW)
    assert "persys delete node n2" in decision.message


def renewal(pem: str, asker: str = "n2", held: tuple[str, ...] = ("n2", "localhost", "127.0.0.1"),
            role: str = "persys:agents", source: str = "127.0.0.1", asks: str = "agents") -> Resource:
    obj = REGISTRY.parse({"kind": "CertificateSigningRequest", "metadata": {"name": "n2-renew"}, "spec": {
        "request": pem, "role": asks, "username": asker, "sourceAddress": source,
        "requester": {"role": role, "sans": list(held)}}})
    obj.status = {}
    return obj


RENEWALS: list[tuple[str, Resource, Action, str]] = [
    ("a node renews its own certificate", renewal(request()), Action.SIGN, "Renewal"),
    ("with an address its certificate holds", renewal(request(sans=("n2", "10.1.2.3")), held=("n2", "10.1.2.3")),
     Action.SIGN, "Renewal"),
    ("with a new address from elsewhere", renewal(request(sans=("n2", "10.1.2.3"))), Action.DENY, "SanNotAllowed"),
    ("for another node", renewal(request(cn="n3", sans=("n3",))), Action.DENY, "RenewalMismatch"),
    ("while its Node is Ready (itself)", renewal(request()), Action.SIGN, "Renewal"),
    ("for another role than its own", renewal(request(org=""), role="persys:operators"), Action.DENY,
     "RenewalMismatch"),
    ("an operator renews its own", renewal(request(cn="backup-op", org="persys:operators", sans=()),
                                          asker="backup-op", held=(), role="persys:operators", asks="operators"),
     Action.SIGN, "Renewal"),
    ("the API server renews its serving certificate",
     renewal(request(cn="server", org="persys:servers", sans=("localhost", "127.0.0.1")), asker="server",
             held=("localhost", "127.0.0.1"), role="persys:servers", asks="servers"), Action.SIGN, "Renewal"),
    ("an admin asking for a name its certificate lacks",
     renewal(request(cn="admin", org="persys:admins", sans=("127.0.0.1",)), asker="admin", held=(),
             role="persys:admins", asks="admins"), Action.DENY, "SanNotAllowed"),
    ("an admin renewing another admin's", renewal(request(cn="alice", org="persys:admins", sans=()), asker="admin",
                                                  held=(), role="persys:admins", asks="admins"),
     Action.DENY, "RenewalMismatch"),
]


@pytest.mark.parametrize(("csr_obj", "action", "reason"), [row[1:] for row in RENEWALS],
                         ids=[row[0] for row in RENEWALS])
def test_renewal(csr_obj: Resource, action: Action, reason: str) -> None:
    decision = decide(csr_obj, csr.inspect(csr_obj.spec["request"]), None, node(True), NOW)
    assert (decision.action, decision.reason) == (action, reason), decision.message
