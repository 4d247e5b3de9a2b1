"""The token-cleaner: deletes each BootstrapToken once it expires, so that expired tokens never pile up.

A token is looked at again when it expires (``Result(requeue_after=…)``) and on every resync; the
delete is fenced by the leader lease. A token that cannot be read as expiring (no parseable
``spec.expires``; the API refuses such tokens) is left alone and logged.
"""

from __future__ import annotations

from persys.errors import NotFound
from persys.resources.certificates import BOOTSTRAP_TOKEN
from persys.resources.model import ObjectKey
from persys.runtime.clock import from_iso
from persys.runtime.controller import Controller, Result


class TokenCleaner(Controller):
    """Deletes expired BootstrapTokens."""

    kind = BOOTSTRAP_TOKEN.kind
    name = "token-cleaner"
    resync_period = 600.0

    async def reconcile(self, key: ObjectKey) -> Result:
        token = self.cache.get(key)
        if token is None:
            return Result()
        expires = from_iso(str(token.spec.get("expires") or ""))
        if expires is None:
            self.log.warning("bootstrap token without a readable expiry", token=key.name)
            return Result()
        left = expires - self.clock.now()
        if left > 0:
            return Result(requeue_after=left)
        try:
            await self.store.delete(self.kind, "", key.name, resource_version=token.metadata.resourceVersion or "",
                                    fence=self.fence)
        except NotFound:
            return Result()
        self.log.info("expired bootstrap token deleted", token=key.name, expired=token.spec.get("expires"))
        return Result()
