"""TLS contexts for the mTLS listener and for clients presenting a cluster certificate.

Every context that presents a certificate is remembered (weakly) by the certificate's file, so that a
renewal (``persys.renewal``) reloads every listener and client of the process that uses it: ``using``.
A reloaded context presents the new certificate on its next handshakes; open connections are kept.
"""

from __future__ import annotations

import ssl
import weakref
from pathlib import Path

_PRESENTING: dict[Path, weakref.WeakSet[ssl.SSLContext]] = {}


def presenting(context: ssl.SSLContext, cert: Path, key: Path) -> ssl.SSLContext:
    """``context``, presenting the certificate in ``cert`` (and reloaded when it is renewed)."""
    context.load_cert_chain(str(cert), str(key))
    _PRESENTING.setdefault(cert.resolve(), weakref.WeakSet()).add(context)
    return context


def using(cert: Path) -> list[ssl.SSLContext]:
    """The live contexts of this process that present the certificate in ``cert``."""
    return list(_PRESENTING.get(cert.resolve(), ()))


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by the cluster CA."""
    context = presenting(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca)), cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_context(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client context trusting the cluster CA and presenting ``cert`` when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    if cert and key:
        presenting(context, cert, key)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
