"""One signed client per node agent, shared by the reconciler and the monitor."""

from __future__ import annotations

from persys.agentclient import AgentClient
from persys.errors import AgentError
from persys.resources.model import Resource


class AgentPool:
    """Clients by node name, re-created when a node's address changes; closed together."""

    def __init__(self, key_id: str, secret: bytes, *, timeout: float = 10.0) -> None:
        self.key_id = key_id
        self.secret = secret
        self.timeout = timeout
        self._clients: dict[str, tuple[str, AgentClient]] = {}
        self._retired: list[AgentClient] = []

    def client(self, node: Resource) -> AgentClient:
        """The client of ``node``'s agent (``spec.address`` is HOST:PORT of its HTTP listener)."""
        address = str(node.spec.get("address") or "")
        if not address:
            raise AgentError(f"node {node.metadata.name} has no address")
        url = address if address.startswith("http") else f"http://{address}"
        current = self._clients.get(node.metadata.name)
        if current is not None and current[0] == url:
            return current[1]
        if current is not None:
            self._retired.append(current[1])
        client = AgentClient(url, self.key_id, self.secret, timeout=self.timeout)
        self._clients[node.metadata.name] = (url, client)
        return client

    async def close(self) -> None:
        clients = [c for _, c in self._clients.values()] + self._retired
        self._clients.clear()
        self._retired.clear()
        for client in clients:
            await client.close()
