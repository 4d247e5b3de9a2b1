"""TLS contexts for the mTLS listener and for clients presenting a cluster certificate."""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by the cluster CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_context(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client context trusting the cluster CA and presenting ``cert`` when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    if cert and key:
        context.load_cert_chain(str(cert), str(key))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
