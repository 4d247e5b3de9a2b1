"""Certificate rotation for every component: renew through a CSR at 2/3 of the lifetime, reload without a restart.

``CertificateRenewer`` watches one certificate file (an agent's, the API server's, the controllers', the
gateway's, an operator's, the CLI's admin one). Once ``RENEW_AT`` (2/3) of its lifetime has passed it makes
a new key and a request for the same CN, O (the role) and SANs, submits it over mTLS with the current
certificate (``POST /bootstrap/certificatesigningrequests``: the API records the requester, and the
csr-signer approves a component renewing its own certificate), waits for the signed certificate, writes
key and certificate beside the old ones and swaps them in, then loads them into the TLS contexts in use
(a listener's, an API client's). New connections use the new certificate; open ones are not dropped. A
failed renewal is retried with back-off until the certificate expires (and after).

``persys_certificate_expiry_seconds{identity}`` is the seconds left on the certificate in use, computed
when scraped; from ``WARN_BEFORE`` (7 days) before expiry every check logs a warning.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from prometheus_client import Gauge

from persys.client.api import ApiClient
from persys.client.certificates import signed
from persys.errors import PersysError
from persys.observability import tracing
from persys.observability.logging import get_logger
from persys.runtime.backoff import Backoff
from persys.security import csr, tls
from persys.security.bootstrap import CSR_PATH

log = get_logger("certificate")

RENEW_AT = 2 / 3  # of the lifetime
WARN_BEFORE = 7 * 86400.0
CHECK_SECONDS = 3600.0  # the expiry warning repeats at most this often
TRUST_SECONDS = 60.0  # at most this long between looks at the certificate and the cluster's CA bundle
POLL_MAX = 1.0  # seconds between looks at a pending renewal, at most
SIGN_TIMEOUT = 120.0
_NOT_IN_NAMES = re.compile(r"[^a-z0-9-]+")

EXPIRY = Gauge("persys_certificate_expiry_seconds", "Seconds until the certificate in use expires", ["identity"])


@dataclass(frozen=True)
class Lifetime:
    """When a certificate was issued, when it expires, and when to renew it."""

    not_before: float
    not_after: float

    @property
    def renew_at(self) -> float:
        return self.not_before + RENEW_AT * (self.not_after - self.not_before)

    @classmethod
    def of(cls, cert: x509.Certificate) -> Lifetime:
        return cls(cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())


def sans_of(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*names.get_values_for_type(x509.DNSName), *(str(ip) for ip in names.get_values_for_type(x509.IPAddress))]


def _subject(cert: x509.Certificate) -> tuple[str, str]:
    """(CN, O) of ``cert``: who it is and its role."""
    def first(oid: x509.ObjectIdentifier) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""
    return first(NameOID.COMMON_NAME), first(NameOID.ORGANIZATION_NAME)


def _pending(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def finish_swap(cert: Path, key: Path) -> None:
    """Leave a matching key and certificate after a renewal a crash interrupted (call before loading them).

    A renewal writes ``key.new`` and ``cert.new``, then renames the key, then the certificate. The key
    renamed but not the certificate: the pair is the new one, so the certificate follows. Neither renamed:
    the old pair is intact and the half-written new one is dropped.
    """
    new_key, new_cert = _pending(key), _pending(cert)
    if new_cert.exists() and not new_key.exists():
        new_cert.replace(cert)
        log.warning("finished an interrupted certificate renewal", cert=str(cert))
    else:
        for leftover in (new_key, new_cert):
            leftover.unlink(missing_ok=True)


def _write(path: Path, data: bytes, private: bool) -> Path:
    partial = _pending(path)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return partial


class CertificateRenewer:
    """Keeps the certificate in ``cert`` (its key in ``key``, trusting ``ca``) renewed.

    ``server()`` names the API server to ask; ``identity`` labels the expiry metric and the logs. After each
    renewal every TLS context of the process presenting ``cert`` (``persys.security.tls.using``: listeners
    and API clients alike) loads the new certificate."""

    def __init__(self, identity: str, cert: Path, key: Path, ca: Path, server: Callable[[], str], *,
                 now: Callable[[], float] = time.time) -> None:
        self.identity, self.cert, self.key, self.ca = identity, cert, key, ca
        self.server, self.now = server, now
        self.backoff = Backoff(1.0, 60.0)
        self.renewals = 0
        self.trusted = ca.read_bytes()  # the bundle the contexts were last told to trust

    def due(self) -> bool:
        """Whether 2/3 of the certificate's lifetime has passed."""
        return self.now() >= Lifetime.of(self.current()).renew_at

    def current(self) -> x509.Certificate:
        certificate = x509.load_pem_x509_certificate(self.cert.read_bytes())
        expires = certificate.not_valid_after_utc.timestamp()
        EXPIRY.labels(self.identity).set_function(lambda: expires - time.time())
        return certificate

    async def run(self) -> None:
        """Renew whenever due, and follow the cluster's CA bundle, forever (a supervised task)."""
        warned = -CHECK_SECONDS
        while True:
            lifetime = Lifetime.of(self.current())
            now = self.now()
            if lifetime.not_after - now < WARN_BEFORE and now - warned >= CHECK_SECONDS:
                warned = now
                log.warning("certificate expires soon", identity=self.identity, seconds=round(lifetime.not_after - now),
                            renew_at=datetime.datetime.fromtimestamp(lifetime.renew_at, datetime.UTC).isoformat())
            await self.follow_cas()
            if now < lifetime.renew_at:
                span = lifetime.not_after - lifetime.not_before
                await asyncio.sleep(min(lifetime.renew_at - now, TRUST_SECONDS, span / 10))
                continue
            try:
                await self.renew()
                self.backoff.reset()
            except PersysError as e:
                delay = self.backoff.next()
                log.warning("certificate renewal failed; retrying", identity=self.identity, error=e.message,
                            retry_in=round(delay, 3))
                await asyncio.sleep(delay)

    async def follow_cas(self) -> None:
        """Trust what the cluster trusts: the CA bundle ``GET /cluster-info`` answers (over the TLS this component
        already trusts) is saved to ``ca`` when it differs, and every context of the process trusting that file
        adds its CAs (``persys.security.tls.trust_more``). That is how a CA rotation reaches every component, on
        any host, without a restart (a CA that leaves the bundle stays trusted by a running process until it
        restarts)."""
        try:
            async with ApiClient(self.server(), ca=self.ca, cert=self.cert, key=self.key, timeout=10.0) as client:
                _, info, _ = await client.request("GET", "/cluster-info")
        except PersysError as e:
            log.warning("could not read the cluster's CA bundle", identity=self.identity, error=e.message)
            return
        bundle = str(info.get("caBundle") or "").encode() if isinstance(info, dict) else b""
        if bundle and bundle != self.ca.read_bytes():
            partial = _write(self.ca, bundle, private=False)
            partial.replace(self.ca)
            log.info("cluster CA bundle saved", identity=self.identity, cas=bundle.count(b"BEGIN CERTIFICATE"))
        current = self.ca.read_bytes()
        if current != self.trusted:
            told = tls.trust_more(self.ca)
            self.trusted = current
            log.info("trusting the cluster's CA bundle", identity=self.identity, contexts=told,
                     cas=current.count(b"BEGIN CERTIFICATE"))

    async def renew(self) -> None:
        """One renewal: a new key, a CSR for the same subject signed for, files swapped, contexts reloaded."""
        old = x509.load_pem_x509_certificate(self.cert.read_bytes())
        common_name, organization = _subject(old)
        key = csr.new_key()
        request = csr.new_request(key, common_name, organization, sans_of(old)).decode()
        with tracing.tracer("persys.certificate").start_as_current_span("certificate.renew", attributes={
                "persys.identity": self.identity}):
            pem = await self._signed(request, common_name, organization.removeprefix("persys:"))
        new_key = _write(self.key, csr.key_pem(key), private=True)
        new_cert = _write(self.cert, pem.encode(), private=False)
        new_key.replace(self.key)
        new_cert.replace(self.cert)
        for context in tls.using(self.cert):
            context.load_cert_chain(str(self.cert), str(self.key))
        self.renewals += 1
        fresh = self.current()
        log.info("certificate renewed", identity=self.identity, serial=format(fresh.serial_number, "x"),
                 expires=fresh.not_valid_after_utc.isoformat())

    async def _signed(self, request: str, common_name: str, role: str) -> str:
        name = f"{_NOT_IN_NAMES.sub('-', common_name.lower())[:55].strip('-') or 'renewal'}-{secrets.token_hex(3)}"
        body = {"apiVersion": "persys.dev/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
                "spec": {"request": request, "role": role}}
        async with ApiClient(self.server(), ca=self.ca, cert=self.cert, key=self.key, timeout=10.0,
                             headers=tracing.inject({})) as client:
            await client.request("POST", CSR_PATH, body=body)
            return await signed(client, name, timeout=SIGN_TIMEOUT, poll_max=POLL_MAX, what="renewal")
