"""An API server announces itself as SRV ``_persys-api._tcp.<zone>``, bound to an etcd lease.

Each server owns one record under that name (its unique last label is derived from host and
port), put with a lease that a background task keeps alive. ``close()`` revokes the lease
so the record goes at once; a server that crashes stops refreshing and etcd removes the record
when the lease expires, with nobody cleaning up. When the lease is lost anyway (etcd was away
longer than the TTL) the task grants a new one and puts the record again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from persys.dns.records import DEFAULT_PRIORITY, DEFAULT_WEIGHT, SkyRecord, name_to_key, srv_name
from persys.errors import PersysError
from persys.observability.logging import get_logger
from persys.store.etcd import Etcd

log = get_logger("dns")

API_SERVICE = "persys-api"


def api_srv_name(zone: str) -> str:
    """``_persys-api._tcp.<zone>``."""
    return srv_name(API_SERVICE, "tcp", zone.rstrip(".").lower())


def api_record(zone: str, host: str, port: int, ttl: int, priority: int = DEFAULT_PRIORITY,
               weight: int = DEFAULT_WEIGHT) -> SkyRecord:
    """The record of the API server at ``host:port``: its SRV target is ``<label>._persys-api._tcp.<zone>``."""
    label = re.sub(r"[^a-z0-9-]+", "-", f"api-{host}-{port}".lower()).strip("-")[:63]
    return SkyRecord(key=f"{name_to_key(api_srv_name(zone))}/{label}", host=host, port=port,
                     priority=priority, weight=weight, ttl=ttl)


class ApiServerRegistration:
    """A live SRV registration; ``close()`` withdraws it (``revoke=False`` leaves it to expire)."""

    def __init__(self, etcd: Etcd, record: SkyRecord, lease_ttl: int) -> None:
        self.etcd = etcd
        self.record = record
        self.lease_ttl = lease_ttl
        self.lease = 0
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        """Grant a lease and put the record on it."""
        self.lease = await self.etcd.grant_lease(self.lease_ttl)
        await self.etcd.put(self.record.key, self.record.encode(), lease=self.lease)
        log.info("dns.api_registered", key=self.record.key, host=self.record.host, port=self.record.port,
                 lease=self.lease)

    async def _keep_alive(self) -> None:
        interval = max(self.lease_ttl / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                if self.lease and await self.etcd.refresh_lease(self.lease) > 0:
                    continue
                log.warning("dns.api_lease_lost", key=self.record.key, lease=self.lease)
                await self.register()
            except PersysError as e:
                log.warning("dns.api_keepalive_failed", key=self.record.key, error=str(e))

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_alive(), name=f"dns-api-keepalive-{self.record.key}")

    async def close(self, *, revoke: bool = True) -> None:
        """Stop refreshing; with ``revoke`` also revoke the lease, which deletes the record now."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if revoke and self.lease:
            try:
                await self.etcd.revoke_lease(self.lease)
            except PersysError as e:
                log.warning("dns.api_revoke_failed", key=self.record.key, error=str(e))
            self.lease = 0


async def register_api_server(etcd: Etcd, zone: str, host: str, port: int, ttl: int = 15, *,
                              priority: int = DEFAULT_PRIORITY, weight: int = DEFAULT_WEIGHT
                              ) -> ApiServerRegistration:
    """Put SRV ``_persys-api._tcp.<zone>`` → ``host:port`` on a lease of ``ttl`` seconds, kept alive.

    The DNS TTL of the record equals the lease TTL so that resolvers never cache it longer than
    it can outlive a crashed server. Raises StoreUnavailable when etcd does not answer.
    """
    registration = ApiServerRegistration(etcd, api_record(zone, host, port, ttl, priority, weight), ttl)
    await registration.register()
    registration.start()
    return registration
