"""Enforcing access: ``permit`` authorizes each request, reading the bindings from a cache.

Every object route calls ``permit(request, verb, kind, namespace, name)``. A request that is its own
certificate is decided by its role (``persys.api.auth.authorize``, unchanged); a request the gateway
makes for a user is decided by the RoleBindings and ClusterRoleBindings (``persys.api.access.decide``),
and refused with 403 naming the user, verb, kind and namespace when none allows it.

The bindings come from ``BindingCache``: an informer per binding kind inside the API server (as
``persys.api.definitions`` follows ResourceDefinitions), so no request reads etcd to be authorized.
A binding written or deleted takes effect on every server once its watch delivers the change.
Until the cache has listed the bindings once, impersonated requests wait for it a few seconds and
then answer 503, never a decision made on bindings not yet read.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from persys.api.access import Decision, User, decide
from persys.api.auth import authorize, identity
from persys.api.context import ApiContext, api_context
from persys.api.impersonation import effective_user
from persys.errors import Forbidden, Unavailable
from persys.resources import Kind, Resource
from persys.resources.rbac import CLUSTER_ROLE_BINDING, ROLE_BINDING
from persys.runtime.informer import Informer
from persys.runtime.supervisor import Named, Service

SYNC_TIMEOUT = 5.0  # seconds an impersonated request waits for the first list of the bindings


class BindingCache:
    """Every RoleBinding and ClusterRoleBinding, kept current by informers; ``ctx.bindings`` reads it."""

    def __init__(self, ctx: ApiContext, *, sync_timeout: float = SYNC_TIMEOUT) -> None:
        self.sync_timeout = sync_timeout
        self.informers = [Informer(ctx.store, ROLE_BINDING.kind), Informer(ctx.store, CLUSTER_ROLE_BINDING.kind)]
        ctx.bindings = self.current

    def services(self) -> list[Service]:
        return [Named(f"api/{informer.kind.lower()}s", informer.run) for informer in self.informers]

    async def current(self) -> list[Resource]:
        """The cached bindings; Unavailable when they could not be listed within ``sync_timeout``."""
        try:
            async with asyncio.timeout(self.sync_timeout):
                for informer in self.informers:
                    await informer.synced.wait()
        except TimeoutError:
            raise Unavailable("the access bindings are not loaded yet (is etcd reachable?); retry") from None
        return [obj for informer in self.informers for obj in informer.objects()]


async def bindings_of(ctx: ApiContext) -> list[Resource]:
    """The bindings authorization reads: the server's cache, or etcd for a context without one."""
    if ctx.bindings is not None:
        return await ctx.bindings()
    found: list[Resource] = []
    for kind in (ROLE_BINDING, CLUSTER_ROLE_BINDING):
        found += (await ctx.store.list(kind.kind))[0]
    return found


async def check(ctx: ApiContext, user: User, verb: str, kind: Kind, namespace: str) -> Decision:
    """What the bindings say about ``user`` (impersonated) doing ``verb`` on ``kind`` in ``namespace``."""
    return decide(await bindings_of(ctx), user, verb, kind, namespace)


async def permit(request: web.Request, verb: str, kind: Kind, namespace: str, name: str | None = None,
                 subresource: str = "") -> None:
    """Raise Forbidden unless this request may ``verb`` ``kind`` objects (``name``, its ``subresource``)
    in ``namespace`` ('' for cluster-scoped kinds and for all namespaces)."""
    user = effective_user(request)
    if not user.impersonated:
        authorize(identity(request), verb, kind, name, subresource, namespace=namespace)
        return
    decision = await check(api_context(request), user, verb, kind, namespace)
    if not decision.allowed:
        raise Forbidden(decision.reason)
