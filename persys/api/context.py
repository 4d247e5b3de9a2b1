"""What every handler shares: the store, the kinds registry and the etcd connection.

Handlers (and route modules added by other components, such as reconciliation) reach it
with ``api_context(request)``. Each server has a registry of its own: the built-in kinds plus
the custom kinds it serves, which it learns at runtime (``persys.api.definitions``).
Components that must see writes before or after the store does hook in through ``admission``
(may refuse or complete an object, dry runs included) and ``written`` (told what was stored).
``bindings`` is where authorization reads the RoleBindings and ClusterRoleBindings from (the API
server's cache, ``persys.api.permission``); without one they are read from etcd. ``hmac_keys`` is the
agents' HMAC keyring as etcd holds it (``persys.store.hmackeys``), which the server writes there first
when etcd has none and it was given ``hmac_secret``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from persys.api.watchcache import HISTORY, WatchCaches
from persys.resources import Kind, Registry, Resource
from persys.resources.kinds import default_registry
from persys.security.keyring import Keyring
from persys.store import Etcd, ObjectStore
from persys.store.hmackeys import REFRESH_SECONDS, StoredKeyring

if TYPE_CHECKING:
    from persys.api.audit.auditor import Auditor

Admit = Callable[[Kind, Resource, Resource | None], Awaitable[None]]
"""Called with (kind, the object to write, the stored object or None) before a create, apply or patch."""
Written = Callable[[Resource], None]
"""Called with the object a create, apply or patch stored."""
Bindings = Callable[[], Awaitable[list[Resource]]]
"""Every stored RoleBinding and ClusterRoleBinding."""


@dataclass
class ApiContext:
    """The shared state of one API server."""

    etcd: Etcd
    registry: Registry = field(default_factory=default_registry)
    bookmark_interval: float = 5.0  # seconds of watch silence before a BOOKMARK line
    watch_history: int = HISTORY  # events per kind the watch cache keeps for watches that resume
    hmac_secret: bytes | Keyring | None = None  # the agents' keyring (a secret: key id default), for etcd's first
    hmac_refresh_seconds: float = REFRESH_SECONDS  # re-read etcd's keyring this often
    hmac_keys: StoredKeyring = field(init=False)  # what routes that call agents sign with (logs), node-config serves
    store: ObjectStore = field(init=False)
    watch_caches: WatchCaches = field(init=False)  # one etcd watch per kind, shared by the client watches
    watches: set[asyncio.Task[Any]] = field(default_factory=set)  # cancelled at shutdown
    admission: list[Admit] = field(default_factory=list)
    written: list[Written] = field(default_factory=list)
    bindings: Bindings | None = None
    audit: Auditor | None = None  # the audit trail (None: this server records none)
    ca_bundle: bytes = b""  # the cluster CA(s), PEM, that GET /cluster-info hands to joining nodes
    ca_file: Path | None = None  # where the bundle is kept: read at each request, so a CA rotation shows at once

    def __post_init__(self) -> None:
        self.store = ObjectStore(self.etcd, self.registry)
        seed = Keyring.single(self.hmac_secret) if isinstance(self.hmac_secret, bytes) else self.hmac_secret
        self.hmac_keys = StoredKeyring(self.etcd, seed, interval=self.hmac_refresh_seconds)
        self.watch_caches = WatchCaches(self.store, history=self.watch_history)

    async def admit(self, kind: Kind, obj: Resource, current: Resource | None) -> None:
        for check in self.admission:
            await check(kind, obj, current)

    def trusted_cas(self) -> bytes:
        """The cluster CA bundle, PEM: the file's current content when there is one."""
        return self.ca_file.read_bytes() if self.ca_file is not None else self.ca_bundle

    def stored(self, obj: Resource) -> Resource:
        for hook in self.written:
            hook(obj)
        return obj


API_CONTEXT = web.AppKey("persys_api_context", ApiContext)


def api_context(request: web.Request) -> ApiContext:
    return request.app[API_CONTEXT]
