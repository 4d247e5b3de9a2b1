"""One signed client per node agent, shared by the reconciler and the monitor.

A Node's ``spec.address`` says how to reach its agent: ``HOST:PORT`` or ``http://HOST:PORT`` for
plain HTTP (hollow nodes), ``https://HOST:PORT`` for an agent serving TLS with its node
certificate. Over https the client accepts only that node's certificate, signed by the cluster CA
(see ``persys.agentclient``), so a node that registers another node's address reaches nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from persys.agentclient import AgentClient
from persys.errors import AgentError
from persys.resources.model import Resource
from persys.security.keyring import HmacKey
from persys.security.paths import HomePaths, default_home


class AgentPool:
    """Clients by node name, re-created when a node's address changes; closed together.

    ``keys()`` is the HMAC key to sign with at each request (the keyring's signing key, which changes
    during a rotation). ``ca`` is the cluster CA agents' certificates are verified against (default:
    ``$PERSYS_HOME``'s).
    """

    def __init__(self, keys: Callable[[], HmacKey], *, timeout: float = 10.0, ca: Path | None = None) -> None:
        self.keys = keys
        self.timeout = timeout
        self.ca = ca or HomePaths(default_home()).ca_cert
        self._clients: dict[str, tuple[str, AgentClient]] = {}
        self._retired: list[AgentClient] = []

    def client(self, node: Resource) -> AgentClient:
        """The client of ``node``'s agent, signing for that node (and verifying it over https)."""
        address = str(node.spec.get("address") or "")
        if not address:
            raise AgentError(f"node {node.metadata.name} has no address")
        current = self._clients.get(node.metadata.name)
        if current is not None and current[0] == address:
            return current[1]
        if current is not None:
            self._retired.append(current[1])
        client = AgentClient.for_node(node.metadata.name, address, self.keys, ca=self.ca, timeout=self.timeout)
        self._clients[node.metadata.name] = (address, client)
        return client

    async def close(self) -> None:
        clients = [c for _, c in self._clients.values()] + self._retired
        self._clients.clear()
        self._retired.clear()
        for client in clients:
            await client.close()
