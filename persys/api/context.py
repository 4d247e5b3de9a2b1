"""What every handler shares: the store, the kinds registry and the etcd connection.

Handlers (and route modules added by other components, such as reconciliation) reach it
with ``api_context(request)``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from persys.resources import REGISTRY, Registry
from persys.store import Etcd, ObjectStore


@dataclass
class ApiContext:
    """The shared state of one API server."""

    etcd: Etcd
    registry: Registry = REGISTRY
    bookmark_interval: float = 5.0  # seconds of watch silence before a BOOKMARK line
    hmac_secret: bytes | None = None  # the agents' shared secret, for routes that call agents (logs)
    store: ObjectStore = field(init=False)
    watches: set[asyncio.Task[Any]] = field(default_factory=set)  # cancelled at shutdown

    def __post_init__(self) -> None:
        self.store = ObjectStore(self.etcd, self.registry)


API_CONTEXT = web.AppKey("persys_api_context", ApiContext)


def api_context(request: web.Request) -> ApiContext:
    return request.app[API_CONTEXT]
