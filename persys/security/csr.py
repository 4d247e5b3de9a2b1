"""Certificate signing requests: made by a joining node, inspected and signed by the cluster CA.

A node makes its key and a PKCS#10 request on its own machine (``new_request``); the key never
leaves it. The signer reads what the request asks for (``inspect``: subject, SANs, key type and
size, whether its self-signature holds) and, once approved, signs a certificate whose subject and
SANs are the signer's choice, not copied blindly from the request (``sign``): CN the node's name,
O its role, usages those of a node certificate (client and server auth).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
CLOCK_SKEW = datetime.timedelta(minutes=5)  # certificates start this much earlier (a tenth of a short lifetime)


@dataclass(frozen=True)
class RequestInfo:
    """What a certificate request asks for, as the signer judges it."""

    common_name: str
    organization: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_type: str  # RSA, EC, Ed25519, Ed448, DSA
    key_bits: int
    signature_valid: bool

    @property
    def sans(self) -> tuple[str, ...]:
        return self.dns_names + self.ip_addresses


class BadRequestPem(ValueError):
    """Raised when a text is not a PEM certificate request."""


def _san(entries: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for entry in dict.fromkeys(entries):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            names.append(x509.DNSName(entry))
    return x509.SubjectAlternativeName(names)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(path: Path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{path}: expected an ECDSA or RSA key")
    return key


def new_request(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str, organization: str,
                sans: Sequence[str]) -> bytes:
    """A PEM certificate request for ``common_name`` (O ``organization``) and ``sans``, signed by ``key``."""
    subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in (
        (NameOID.COMMON_NAME, common_name), (NameOID.ORGANIZATION_NAME, organization)) if value])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(_san(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def _key(public: object) -> tuple[str, int]:
    if isinstance(public, rsa.RSAPublicKey):
        return "RSA", public.key_size
    if isinstance(public, ec.EllipticCurvePublicKey):
        return "EC", public.curve.key_size
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(public, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(public, dsa.DSAPublicKey):
        return "DSA", public.key_size
    return type(public).__name__, 0


def load_request(pem: str | bytes) -> x509.CertificateSigningRequest:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise BadRequestPem(f"not a PEM certificate request ({e})") from e


def inspect(pem: str | bytes) -> RequestInfo:
    """What the request in ``pem`` asks for; BadRequestPem when it is not one."""
    request = load_request(pem)
    try:
        names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns, ips = tuple(names.get_values_for_type(x509.DNSName)), \
            tuple(str(ip) for ip in names.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    except ValueError as e:  # a malformed extension
        raise BadRequestPem(f"unreadable extensions ({e})") from e
    key_type, bits = _key(request.public_key())
    return RequestInfo(common_name=_attribute(request.subject, NameOID.COMMON_NAME),
                       organization=_attribute(request.subject, NameOID.ORGANIZATION_NAME),
                       dns_names=dns, ip_addresses=ips, key_type=key_type, key_bits=bits,
                       signature_valid=request.is_signature_valid)


def weak_key(info: RequestInfo) -> str | None:
    """Why the request's key is too weak to sign (None when it is strong enough)."""
    if info.key_type == "RSA" and info.key_bits < MIN_RSA_BITS:
        return f"RSA key of {info.key_bits} bits: at least {MIN_RSA_BITS} are required"
    if info.key_type == "EC" and info.key_bits < MIN_EC_BITS:
        return f"EC key of {info.key_bits} bits: at least {MIN_EC_BITS} are required"
    if info.key_type == "DSA":
        return "DSA keys are not accepted (use ECDSA P-256 or RSA of 2048 bits or more)"
    return None


def sign(pem: str | bytes, ca_cert_path: Path, ca_key_path: Path, *, common_name: str, organization: str,
         sans: Sequence[str], lifetime: datetime.timedelta) -> bytes:
    """A PEM certificate for the request's public key, with the subject and SANs given (not the request's), signed
    by the first CA of the bundle ``ca_cert_path`` (a CA rotation puts the new one first)."""
    request = load_request(pem)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{ca_key_path}: expected an ECDSA or RSA key")
    if ca_key.public_key() != ca_cert.public_key():  # the instant a CA rotation swaps the two files
        raise ValueError(f"{ca_key_path} is not the key of the first CA in {ca_cert_path}; try again")
    public = request.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError("only ECDSA and RSA keys are signed")
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject).public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - min(CLOCK_SKEW, lifetime / 10)).not_valid_after(now + lifetime)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                     ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if sans:
        builder = builder.add_extension(_san(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
