"""Helpers for the join tests: tokens and certificate requests as a joining node makes them, and a manager
running the csr-signer (and token-cleaner) over a CA of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from persys.controllers import ControllersConfig, build_manager
from persys.resources import ObjectMeta, Resource
from persys.runtime.clock import to_iso
from persys.security import csr
from persys.security.bootstrap import new_token, secret_hash
from persys.store import ObjectStore

SECRET = b"0" * 64


def token_object(ttl: float = 3600, **spec: Any) -> tuple[Resource, str]:
    """A BootstrapToken valid ``ttl`` seconds (negative: expired), and the token it stands for."""
    token_id, secret = new_token()
    obj = Resource(kind="BootstrapToken", metadata=ObjectMeta(name=token_id), spec={
        "secretHash": secret_hash(secret), "expires": to_iso(time.time() + ttl), "roles": ["agents"], **spec})
    return obj, f"{token_id}.{secret}"


def csr_object(name: str, node: str, *, token: str = "", role: str = "agents", org: str | None = None,
               sans: tuple[str, ...] = (), source: str = "127.0.0.1", key: Any = None) -> Resource:
    """A CSR for ``node`` as the API stores it when ``token`` (an id) made it ('' : an admin made it)."""
    pem = csr.new_request(key or csr.new_key(), node, f"persys:{role}" if org is None else org,
                          sans or (node, "localhost", "127.0.0.1")).decode()
    return Resource(kind="CertificateSigningRequest", metadata=ObjectMeta(name=name), spec={
        "request": pem, "role": role, "token": token, "sourceAddress": source,
        "username": f"system:bootstrap:{token}" if token else "admin"})


@contextlib.asynccontextmanager
async def signer(etcd_url: str, home: Path, identity: str = "signer",
                 certificate_seconds: float = 3600.0) -> AsyncIterator[None]:
    """The csr-signer (signing for ``certificate_seconds``) and token-cleaner, leading, for the length of the block."""
    manager = build_manager(etcd_url, home=home, listen=None, hmac_secret=SECRET, identity=identity,
                            config=ControllersConfig(lease_ttl=2, certificate_seconds=certificate_seconds),
                            controllers=("csr-signer", "token-cleaner"))
    task = asyncio.create_task(manager.run(), name=f"manager-{identity}")
    try:
        yield
    finally:
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def issued(store: ObjectStore, name: str) -> Resource | None:
    """The CSR once it has a certificate or a Denied condition, else None."""
    found = await store.get("CertificateSigningRequest", "", name)
    decided = found.status.get("certificate") or any(c.get("type") == "Denied" for c in found.status.get(
        "conditions") or [])
    return found if decided else None
