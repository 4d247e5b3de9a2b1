"""The cluster PKI: one CA under ``$PERSYS_HOME/pki`` and the certificates it signs.

A certificate's CN is the caller's identity and its O the role (``persys:admins``,
``persys:agents``, ``persys:controllers``, ``persys:operators``, ``persys:gateway``); the API
authorizes on exactly these two fields. The gateway role acts for people: the API trusts its
impersonation headers, and only its.
ECDSA P-256 keys: fast to generate, so ``persys up`` and the tests pay almost nothing.
The PKI also holds the cluster's id (``cluster-id``), made with the CA because it names the
same thing: this cluster, as opposed to another one on the same Docker host.
Every function is idempotent: files that exist are kept, never regenerated, with one exception:
an agent's certificate is also the one its HTTPS listener serves, so that the control plane can
tell it calls the node it means to; one that lacks an address the agent listens on is re-issued.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from persys.errors import Conflict
from persys.security.csr import CLOCK_SKEW
from persys.security.paths import HomePaths, read_cluster_id

ROLES = ("admins", "agents", "controllers", "operators", "gateway")
AGENTS = "persys:agents"
OPERATORS = "persys:operators"
GATEWAY = "persys:gateway"
GATEWAY_NAMESPACE = "persys-gateway"  # where the gateway keeps its sessions and webhook secrets (as Secrets)
AGENT_SANS = ("localhost", "127.0.0.1")  # every agent certificate serves TLS on the loopback too
DEFAULT_SERVER = "https://127.0.0.1:7443"
DEFAULT_ZONE = "persys.local"
SERVER_SANS = ("localhost", "persys-api", "_persys-api", f"_persys-api._tcp.{DEFAULT_ZONE}", "127.0.0.1")
CA_SECONDS = 3650 * 86400.0  # the CA: ten years
CERT_SECONDS = 30 * 86400.0  # everything else: 30 days, renewed by each component at 2/3 (persys.renewal)


def _paths(home: Path | HomePaths) -> HomePaths:
    return home if isinstance(home, HomePaths) else HomePaths(Path(home).absolute())


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only the owner may read (keys, the HMAC secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _san(entries: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for entry in entries:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            names.append(x509.DNSName(entry))
    return x509.SubjectAlternativeName(names)


def _sans_of(cert_path: Path) -> set[str]:
    """The DNS names and IP addresses a certificate on disk serves TLS for."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(names.get_values_for_type(x509.DNSName)) | {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             seconds: float) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    lifetime = datetime.timedelta(seconds=seconds)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - min(CLOCK_SKEW, lifetime / 10))
            .not_valid_after(now + lifetime))


def ensure_ca(home: Path | HomePaths, *, lifetime: float = CA_SECONDS) -> HomePaths:
    """Create the CA key and self-signed certificate unless they exist."""
    paths = _paths(home)
    paths.pki.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.pki, 0o700)
    if paths.ca_cert.exists() and paths.ca_key.exists():
        return paths
    key, cert = _new_ca("persys-ca", lifetime)
    _write_private(paths.ca_key, _key_pem(key))
    paths.ca_cert.write_bytes(cert)
    return paths


def _new_ca(common_name: str, lifetime: float) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = _new_key()
    name = _name(common_name, "persys")
    cert = (_builder(name, name, key.public_key(), lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


# -- CA rotation: a bundle of both CAs while every certificate moves from the old one to the new --
#
# ``ca.crt`` is a bundle: every component trusts each CA in it, and the first one is the one that signs
# (with ``ca.key``). start: a new CA (``ca-next.*``) joins the bundle, second. switch: it signs (first in
# the bundle, its key becomes ``ca.key``; the old one is kept as ``ca-previous.crt``), and every renewal
# from then on gets a certificate of the new CA. finish: the old CA leaves the bundle.

def _ca_files(paths: HomePaths) -> tuple[Path, Path, Path]:
    return paths.pki / "ca-next.crt", paths.pki / "ca-next.key", paths.pki / "ca-previous.crt"


def _replace(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``data`` to ``path`` in one rename: a reader sees the old file or the new one, never half."""
    partial = path.with_name(path.name + ".tmp")
    partial.unlink(missing_ok=True)
    if private:
        _write_private(partial, data)
    else:
        partial.write_bytes(data)
    partial.replace(path)


def ca_rotation_step(home: Path | HomePaths) -> str:
    """Where a CA rotation stands: ``none``, ``started`` (the new CA trusted) or ``switched`` (it signs)."""
    paths = _paths(home)
    following, _, previous = _ca_files(paths)
    return "started" if following.exists() else "switched" if previous.exists() else "none"


def rotate_ca_start(home: Path | HomePaths, *, lifetime: float = CA_SECONDS) -> Path:
    """Make the next CA and add it to the bundle (trusted, not signing yet); its certificate's path."""
    paths = _paths(home)
    if (step := ca_rotation_step(paths)) != "none":
        raise Conflict(f"a CA rotation is already {step}: finish it first (persys pki rotate-ca "
                       f"{'switch' if step == 'started' else 'finish'})")
    following, following_key, _ = _ca_files(paths)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    key, cert = _new_ca(f"persys-ca-{stamp}", lifetime)
    _write_private(following_key, _key_pem(key))
    following.write_bytes(cert)
    _replace(paths.ca_cert, paths.ca_cert.read_bytes() + cert)
    return following


def rotate_ca_switch(home: Path | HomePaths) -> None:
    """Sign with the next CA from now on (it goes first in the bundle); the old one stays trusted."""
    paths = _paths(home)
    following, following_key, previous = _ca_files(paths)
    if ca_rotation_step(paths) != "started":
        raise Conflict("no CA rotation has started: persys pki rotate-ca start")
    old = _pem(x509.load_pem_x509_certificates(paths.ca_cert.read_bytes())[0])
    previous.write_bytes(old)
    _replace(paths.ca_cert, following.read_bytes() + old)  # the signer checks the key matches the first
    _replace(paths.ca_key, following_key.read_bytes(), private=True)
    following.unlink()
    following_key.unlink()


def rotate_ca_finish(home: Path | HomePaths) -> None:
    """Trust only the new CA: certificates of the old one are refused from the next start of each component."""
    paths = _paths(home)
    _, _, previous = _ca_files(paths)
    if ca_rotation_step(paths) != "switched":
        raise Conflict("the new CA does not sign yet: persys pki rotate-ca switch (then wait until every "
                       "certificate was renewed)")
    _replace(paths.ca_cert, _pem(x509.load_pem_x509_certificates(paths.ca_cert.read_bytes())[0]))
    previous.unlink()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _role(role: str) -> str:
    short = role.removeprefix("persys:")
    if short not in ROLES and short != "servers":
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return f"persys:{short}"


def common_name(identity: str) -> str:
    """The CN for ``identity``: agents (``node-<name>``) are known by their node name."""
    return identity.removeprefix("node-")


def cert_identity(peercert: Mapping[str, Any] | None) -> tuple[str, str]:
    """(CN, O) of a peer's certificate as ``ssl`` reports it (``getpeercert()``); '' where absent."""
    fields = {key: str(value) for rdn in (peercert or {}).get("subject", ()) for key, value in rdn}
    return fields.get("commonName", ""), fields.get("organizationName", "")


def issue(home: Path | HomePaths, identity: str, role: str, *, sans: Sequence[str] = (),
          force: bool = False, lifetime: float = CERT_SECONDS) -> tuple[Path, Path]:
    """Sign a certificate for ``identity`` (file name) with role ``role``; (cert, key) paths.

    With ``sans`` the certificate also serves TLS for those names and addresses; an agent's
    always does, for its node name, ``AGENT_SANS`` and ``sans`` (the addresses it listens on).
    An existing certificate is kept unless ``force``, or unless it lacks one of the names asked for (the server
    certificate of a ``persys up --advertise`` with a new address, say).
    """
    paths = ensure_ca(home)
    cert_path, key_path = paths.cert(identity), paths.key(identity)
    agent = _role(role) == AGENTS
    if agent:
        sans = list(dict.fromkeys([common_name(identity), *AGENT_SANS, *sans]))
    if cert_path.exists() and key_path.exists() and not force and set(sans) <= _sans_of(cert_path):
        return cert_path, key_path
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{paths.ca_key}: expected an ECDSA key")
    key = _new_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if sans else [])
    builder = (_builder(_name(common_name(identity), _role(role)), ca_cert.subject, key.public_key(), lifetime)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if sans:
        builder = builder.add_extension(_san(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def ensure_hmac_secret(home: Path | HomePaths) -> Path:
    """The agents' shared HMAC secret: 64 hex characters, owner-only, created once."""
    paths = _paths(home)
    paths.pki.mkdir(parents=True, exist_ok=True)
    if not paths.hmac_secret.exists():
        _write_private(paths.hmac_secret, (secrets.token_hex(32) + "\n").encode())
    return paths.hmac_secret


def ensure_cluster_id(home: Path | HomePaths) -> str:
    """The cluster's id: 16 random hex characters, created once with the cluster and kept."""
    paths = _paths(home)
    paths.pki.mkdir(parents=True, exist_ok=True)
    if not paths.cluster_id.exists():
        paths.cluster_id.write_text(secrets.token_hex(8) + "\n")
    return read_cluster_id(paths)


def write_config(home: Path | HomePaths, server: str = DEFAULT_SERVER, *, force: bool = False) -> Path:
    """``config.yaml`` for the CLI: the server URL and the admin certificate (absolute paths)."""
    paths = _paths(home)
    if paths.config.exists() and not force:
        return paths.config
    config = {"server": server, "ca": str(paths.ca_cert.absolute()),
              "cert": str(paths.cert("admin").absolute()), "key": str(paths.key("admin").absolute())}
    paths.config.write_text(yaml.safe_dump(config, sort_keys=False))
    return paths.config


def init(home: Path | HomePaths, *, server: str = DEFAULT_SERVER, server_sans: Sequence[str] = SERVER_SANS,
         lifetime: float = CERT_SECONDS) -> HomePaths:
    """The whole PKI of a new cluster: CA, server, admin and controller certs (each lasting ``lifetime``
    seconds), HMAC secret, cluster id, config."""
    paths = ensure_ca(home)
    issue(paths, "server", "servers", sans=server_sans, lifetime=lifetime)
    issue(paths, "admin", "admins", lifetime=lifetime)
    issue(paths, "controller", "controllers", lifetime=lifetime)
    ensure_hmac_secret(paths)
    ensure_cluster_id(paths)
    write_config(paths, server)
    return paths
