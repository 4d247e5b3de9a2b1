"""The dashboard's API clients: one per logged-in user, each impersonating that user.

Every page, stream and action the dashboard serves reads and writes the API under the gateway's
certificate with ``Impersonate-User``/``Impersonate-Group`` naming the person (as the proxy does),
so the RoleBindings decide what they see and may do, and the API's audit trail names them. A client
keeps a connection pool, so clients are kept per (user, groups), the most recently used
``size`` of them; one that falls out is closed (a stream it was serving ends, and the browser's
EventSource reconnects with a fresh one).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from persys.client.api import ApiClient
from persys.gateway.tokens import Claims
from persys.security.impersonation import headers


class UserClients:
    """``ApiClient``s acting for users, by (user, groups)."""

    def __init__(self, servers: Sequence[str], *, ca: Path, cert: Path, key: Path, size: int = 128) -> None:
        self.servers = list(servers)
        self.ca, self.cert, self.key = ca, cert, key
        self.size = size
        self._clients: OrderedDict[tuple[str, tuple[str, ...]], ApiClient] = OrderedDict()

    async def of(self, claims: Claims) -> ApiClient:
        """The client acting for the caller ``claims`` name."""
        who = (claims.user, tuple(claims.groups))
        client = self._clients.get(who)
        if client is not None:
            self._clients.move_to_end(who)
            return client
        client = ApiClient(self.servers[0], ca=self.ca, cert=self.cert, key=self.key, fallbacks=self.servers[1:],
                           headers=headers(claims.user, claims.groups))
        self._clients[who] = client
        while len(self._clients) > self.size:
            _, oldest = self._clients.popitem(last=False)
            await oldest.close()
        return client

    async def close(self) -> None:
        while self._clients:
            _, client = self._clients.popitem()
            await client.close()
