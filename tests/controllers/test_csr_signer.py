"""The csr-signer against a real etcd: a request its token allows is signed by the cluster CA with the node's
SANs; one it does not allow is denied with the reason and an Event; one without a token waits for an admin.
The token-cleaner deletes expired tokens."""

from __future__ import annotations

from pathlib import Path

from controller_support import eventually
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from persys.controllers.events import events_for
from persys.errors import NotFound
from persys.security import pki
from persys.store import ObjectStore
from persys.store.server import EtcdServer
from tests.support.joining import csr_object, issued, signer, token_object


def _subject(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    return str(cert.subject.get_attributes_for_oid(oid)[0].value)


async def test_a_request_the_token_allows_is_signed_by_the_cluster_ca(etcd_server: EtcdServer, store: ObjectStore,
                                                                      tmp_path: Path) -> None:
    paths = pki.ensure_ca(tmp_path)
    token, _ = token_object()
    await store.create(token)
    await store.create(csr_object("n2-a", "n2", token=token.metadata.name))
    async with signer(etcd_server.url, tmp_path):
        done = await eventually(lambda: issued(store, "n2-a"), what="the certificate")
    cert = x509.load_pem_x509_certificate(done.status["certificate"].encode())
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    assert (_subject(cert, NameOID.COMMON_NAME), _subject(cert, NameOID.ORGANIZATION_NAME)) == ("n2", "persys:agents")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"n2", "localhost"}
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    approved = [c for c in done.status["conditions"] if c["type"] == "Approved"]
    assert approved[0]["reason"] == "AutoApproved" and token.metadata.name in approved[0]["message"]
    assert [e.spec["reason"] for e in await events_for(store, done)] == ["CertificateIssued"]


async def test_a_role_the_token_does_not_allow_is_denied_with_an_event(etcd_server: EtcdServer, store: ObjectStore,
                                                                        tmp_path: Path) -> None:
    pki.ensure_ca(tmp_path)
    token, _ = token_object()
    await store.create(token)
    await store.create(csr_object("root", "n2", token=token.metadata.name, role="admins"))
    await store.create(csr_object("far", "n3", token=token.metadata.name, sans=("n3", "192.0.2.7")))
    async with signer(etcd_server.url, tmp_path):
        denied = await eventually(lambda: issued(store, "root"), what="the denial")
        far = await eventually(lambda: issued(store, "far"), what="the denial of an address")
    assert "certificate" not in denied.status
    condition = denied.status["conditions"][0]
    assert (condition["type"], condition["reason"]) == ("Denied", "RoleNotAllowed")
    assert "not admins" in condition["message"]
    [event] = await events_for(store, denied)
    assert event.spec["type"] == "Warning" and event.spec["reason"] == "CertificateDenied"
    assert "RoleNotAllowed" in event.spec["message"]
    assert far.status["conditions"][0]["reason"] == "SanNotAllowed" and "192.0.2.7" in \
        far.status["conditions"][0]["message"]


async def test_a_request_without_a_token_waits_for_an_admin(etcd_server: EtcdServer, store: ObjectStore,
                                                            tmp_path: Path) -> None:
    pki.ensure_ca(tmp_path)
    token, _ = token_object()
    await store.create(token)
    await store.create(csr_object("by-hand", "ops", role="operators"))
    await store.create(csr_object("n2-later", "n2", token=token.metadata.name))  # listed after by-hand
    async with signer(etcd_server.url, tmp_path):
        await eventually(lambda: issued(store, "n2-later"), what="the signer's pass")
        assert await issued(store, "by-hand") is None
        current = await store.get("CertificateSigningRequest", "", "by-hand")
        await store.update_status("CertificateSigningRequest", "", "by-hand", {"conditions": [
            {"type": "Approved", "status": "True", "reason": "ApprovedByAdmin", "message": "ok"}]},
            resource_version=current.metadata.resourceVersion or "")
        done = await eventually(lambda: issued(store, "by-hand"), what="the certificate")
    cert = x509.load_pem_x509_certificate(done.status["certificate"].encode())
    assert _subject(cert, NameOID.ORGANIZATION_NAME) == "persys:operators"


async def _gone(store: ObjectStore, name: str) -> bool:
    try:
        await store.get("BootstrapToken", "", name)
    except NotFound:
        return True
    return False


async def test_expired_tokens_are_deleted_and_valid_ones_kept(etcd_server: EtcdServer, store: ObjectStore,
                                                             tmp_path: Path) -> None:
    expired, _ = token_object(ttl=-5)
    soon, _ = token_object(ttl=1.5)
    valid, _ = token_object(ttl=3600)
    for token in (expired, soon, valid):
        await store.create(token)
    async with signer(etcd_server.url, tmp_path):
        await eventually(lambda: _gone(store, expired.metadata.name), what="the expired token deleted")
        await eventually(lambda: _gone(store, soon.metadata.name), what="the token deleted when it expired")
        assert not await _gone(store, valid.metadata.name)
