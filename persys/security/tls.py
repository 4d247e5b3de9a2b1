"""TLS contexts for the mTLS listener and for clients presenting a cluster certificate.

Every context that presents a certificate is remembered (weakly) by the certificate's file, so that a
renewal (``persys.renewal``) reloads every listener and client of the process that uses it: ``using``.
A reloaded context presents the new certificate on its next handshakes; open connections are kept.
Every context that trusts a CA file is remembered by that file too (``trusting``): when a CA rotation
adds a CA to the bundle, ``trust_more`` makes each of them trust it as well.
"""

from __future__ import annotations

import ssl
import weakref
from pathlib import Path

_PRESENTING: dict[Path, weakref.WeakSet[ssl.SSLContext]] = {}
_TRUSTING: dict[Path, weakref.WeakSet[ssl.SSLContext]] = {}


def presenting(context: ssl.SSLContext, cert: Path, key: Path) -> ssl.SSLContext:
    """``context``, presenting the certificate in ``cert`` (and reloaded when it is renewed)."""
    context.load_cert_chain(str(cert), str(key))
    _PRESENTING.setdefault(cert.resolve(), weakref.WeakSet()).add(context)
    return context


def trusting(context: ssl.SSLContext, ca: Path) -> ssl.SSLContext:
    """``context``, which trusts the CAs in ``ca``, told of those added to it later (``trust_more``)."""
    _TRUSTING.setdefault(ca.resolve(), weakref.WeakSet()).add(context)
    return context


def trust_more(ca: Path) -> int:
    """Make every live context trusting ``ca`` trust what it holds now (a CA that left it stays trusted until
    the process restarts); how many contexts were told."""
    contexts = list(_TRUSTING.get(ca.resolve(), ()))
    bundle = ca.read_text()
    for context in contexts:
        context.load_verify_locations(cadata=bundle)
    return len(contexts)


def using(cert: Path) -> list[ssl.SSLContext]:
    """The live contexts of this process that present the certificate in ``cert``."""
    return list(_PRESENTING.get(cert.resolve(), ()))


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by the cluster CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    presenting(trusting(context, ca), cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def client_context(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client context trusting the cluster CA and presenting ``cert`` when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    if ca:
        trusting(context, ca)
    if cert and key:
        presenting(context, cert, key)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
