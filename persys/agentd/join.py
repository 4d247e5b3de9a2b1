"""Joining a cluster with a bootstrap token: the node's certificate, made on the node, signed by the cluster.

``join`` does what ``persys agent --join URL --token T --ca-hash H`` needs before the agent runs:

1. ``GET /cluster-info`` without trusting the server yet, and compare the CA bundle it answers with the
   pinned hash (``sha256:`` of the CA's DER SubjectPublicKeyInfo). A mismatch stops here: the token and
   everything else are sent only to a server whose certificate that CA signed.
2. Make the node's key (ECDSA P-256) in the state directory (it never leaves the host) and a certificate
   request for CN = the node name, O = ``persys:agents``, SANs = the node name, ``localhost``,
   ``127.0.0.1`` and the hosts it listens on and advertises.
3. Submit it as a CertificateSigningRequest with ``Authorization: Bearer <token>`` and poll it until the
   csr-signer issues the certificate (or denies it: the reason is the error).
4. With the new certificate, fetch the agents' HMAC keyring and the cluster id (``GET /bootstrap/node-config``).

Everything lands under ``<state-dir>/pki`` (keys and secret owner-only). A node that joined before finds
its files there and does not join again. One span, ``agent.join``, covers it all; its ``traceparent``
goes with each request, so the API's spans and the signer's ``csr.sign`` join the same trace.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from persys.agentd.hmackeys import node_keyring
from persys.client.api import ApiClient
from persys.client.certificates import signed
from persys.errors import Forbidden, Unavailable
from persys.observability import tracing
from persys.observability.logging import get_logger
from persys.security import csr
from persys.security.bootstrap import CLUSTER_INFO_PATH, CSR_PATH, NODE_CONFIG_PATH, ca_hashes
from persys.security.keyring import write_keyring

log = get_logger("agent.join")
AGENT_SANS = ("localhost", "127.0.0.1")
POLL_MAX = 0.25  # seconds between looks at the pending request, at most (a signer answers in tens of ms)


@dataclass(frozen=True)
class JoinFiles:
    """Where a joined node keeps its credentials: ``<state-dir>/pki``."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.directory / "node.crt"

    @property
    def key(self) -> Path:
        return self.directory / "node.key"

    @property
    def hmac_secret(self) -> Path:
        return self.directory / "agent-hmac.secret"

    @property
    def cluster_id(self) -> Path:
        return self.directory / "cluster-id"

    def complete(self) -> bool:
        return all(p.exists() for p in (self.ca, self.cert, self.key, self.hmac_secret, self.cluster_id))


@dataclass(frozen=True)
class JoinSettings:
    """What ``persys agent --join`` was given."""

    server: str  # https://HOST:PORT of an API server
    token: str
    ca_hash: str
    node: str
    hosts: Sequence[str] = ()  # hosts the agent listens on and advertises: SANs of its certificate
    timeout: float = 300.0  # seconds to wait for the certificate


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Write ``data`` whole or not at all (a crash never leaves half a key), owner-only when ``private``."""
    partial = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    partial.replace(path)


async def fetch_cluster_info(server: str, timeout: float = 10.0) -> dict[str, Any]:
    """``GET /cluster-info`` without verifying the server (the caller checks the CA it answers)."""
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session, \
                session.get(server.rstrip("/") + CLUSTER_INFO_PATH, headers=tracing.inject({}),
                            timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status != 200:
                raise Unavailable(f"{server}{CLUSTER_INFO_PATH} answered {resp.status}: {(await resp.text())[:200]}")
            body = await resp.json()
    except (aiohttp.ClientError, TimeoutError) as e:
        raise Unavailable(f"cannot reach {server} to join: {e}") from e
    if not isinstance(body, dict) or not isinstance(body.get("caBundle"), str):
        raise Unavailable(f"{server}{CLUSTER_INFO_PATH} did not answer a CA bundle")
    return body


def check_ca(bundle: str, pinned: str, server: str) -> None:
    """Forbidden unless one CA of ``bundle`` has the ``pinned`` hash."""
    try:
        found = ca_hashes(bundle.encode())
    except ValueError as e:
        raise Forbidden(f"{server} answered a CA bundle that does not parse ({e}); nothing was sent") from e
    if pinned.strip().lower() not in found:
        raise Forbidden(f"the CA of {server} does not match --ca-hash: expected {pinned}, the server's is "
                        f"{', '.join(found) or 'none'}; nothing was sent (is this the right server?)")


async def join(settings: JoinSettings, files: JoinFiles) -> JoinFiles:
    """Join the cluster at ``settings.server`` (see the module docstring); the files of a node that joined."""
    if files.complete():
        log.info("already joined", node=settings.node, credentials=str(files.directory))
        return files
    files.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(files.directory, 0o700)
    with tracing.tracer("persys.agent").start_as_current_span("agent.join", attributes={
            "persys.node": settings.node, "persys.server": settings.server}):
        info = await fetch_cluster_info(settings.server)
        check_ca(info["caBundle"], settings.ca_hash, settings.server)
        _write(files.ca, info["caBundle"].encode())
        key = csr.load_key(files.key) if files.key.exists() else None
        if key is None:
            key = csr.new_key()
            _write(files.key, csr.key_pem(key), private=True)
        sans = list(dict.fromkeys([settings.node, *AGENT_SANS, *settings.hosts]))
        request = csr.new_request(key, settings.node, "persys:agents", sans)
        certificate = await _certificate(settings, files, request.decode())
        _write(files.cert, certificate.encode())
        await _node_config(settings, files)
    log.info("joined", node=settings.node, server=settings.server, credentials=str(files.directory))
    return files


async def _certificate(settings: JoinSettings, files: JoinFiles, request: str) -> str:
    """Submit ``request`` with the token and wait for its certificate; Forbidden with the reason if denied."""
    name = f"{settings.node[:55]}-{secrets.token_hex(3)}"
    headers = {"Authorization": f"Bearer {settings.token}", **tracing.inject({})}
    body = {"apiVersion": "persys.dev/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": request, "role": "agents"}}
    async with ApiClient(settings.server, ca=files.ca, headers=headers, timeout=10.0) as client:
        await client.request("POST", CSR_PATH, body=body)
        log.info("certificate requested", csr=name, node=settings.node)
        return await signed(client, name, timeout=settings.timeout, poll_max=POLL_MAX, what="certificate request",
                            hint=": is the csr-signer running where the CA key is? (an admin can also "
                                 f"`persys certificate approve {name}`)")


async def _node_config(settings: JoinSettings, files: JoinFiles) -> None:
    """The HMAC keyring and cluster id, asked for with the node's new certificate."""
    async with ApiClient(settings.server, ca=files.ca, cert=files.cert, key=files.key, timeout=10.0,
                         headers=tracing.inject({})) as client:
        _, config, _ = await client.request("GET", NODE_CONFIG_PATH)
    write_keyring(files.hmac_secret, node_keyring(config, f"{settings.server}{NODE_CONFIG_PATH}"))
    _write(files.cluster_id, (str(config.get("clusterId") or "") + "\n").encode())
