"""Bootstrap tokens and CA pinning: what lets a new node join with one command line.

A token is ``<id>.<secret>``: 6 and 16 characters of ``[a-z0-9]``, as kubeadm's are. The id names
the ``BootstrapToken`` object; the secret is never stored, only ``sha256:<hex>`` of it, so that
reading etcd (or a backup of it) gives nobody a token. A joining node sends the whole token as
``Authorization: Bearer <id>.<secret>``; the API compares hashes in constant time.

The CA is pinned by ``sha256:<hex>`` of its certificate's DER-encoded SubjectPublicKeyInfo (the
public key, not the whole certificate: kubeadm's ``--discovery-token-ca-cert-hash``), so that a
CA re-issued with the same key keeps its hash. A joining node checks it before it sends anything.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

from cryptography import x509
from cryptography.hazmat.primitives import serialization

TOKEN_ID = re.compile(r"[a-z0-9]{6}")
TOKEN = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
HASH_PREFIX = "sha256:"
_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_FORMAT = "<id>.<secret>: 6 and 16 characters of a-z and 0-9"


def new_token() -> tuple[str, str]:
    """A fresh (id, secret) from the system's cryptographic random source."""
    return (''.join(secrets.choice(_ALPHABET) for _ in range(6)),
            ''.join(secrets.choice(_ALPHABET) for _ in range(16)))


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token; None otherwise."""
    found = TOKEN.fullmatch(token.strip())
    return (found.group(1), found.group(2)) if found else None


def secret_hash(secret: str) -> str:
    """What is stored of a token's secret: ``sha256:<hex>``."""
    return HASH_PREFIX + hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored``, compared in constant time."""
    return hmac.compare_digest(secret_hash(secret).encode(), stored.encode())


def ca_hash(ca_pem: bytes) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo of the first certificate in ``ca_pem``."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return HASH_PREFIX + hashlib.sha256(spki).hexdigest()


def ca_hashes(bundle_pem: bytes) -> list[str]:
    """The hash of every certificate in a PEM bundle (a bundle holds two CAs while one replaces the other)."""
    return [ca_hash(cert.public_bytes(serialization.Encoding.PEM))
            for cert in x509.load_pem_x509_certificates(bundle_pem)]


def check_ca_hash(value: str) -> str | None:
    """None when ``value`` is ``sha256:`` and 64 hex digits, else what is wrong with it."""
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value.strip().lower()):
        return "must be sha256: followed by 64 hex digits (the hash `persys up` and `persys token create` print)"
    return None


# the join routes (persys.api.bootstrap serves them, persys.agentd.join calls them)
CLUSTER_INFO_PATH = "/cluster-info"
CSR_PATH = "/bootstrap/certificatesigningrequests"
NODE_CONFIG_PATH = "/bootstrap/node-config"


def join_command(server: str, token: str, ca_pem: bytes, node: str = "NODE", listen: str = "127.0.0.1:7100") -> str:
    """The command a new host runs to join the cluster at ``server`` with ``token``."""
    return f"persys agent --join {server} --token {token} --ca-hash {ca_hash(ca_pem)} --name {node} --listen {listen}"
