"""An API server announces itself as SRV ``_persys-api._tcp.<zone>``, bound to an etcd lease.

Each server owns one record under that name (its unique last label is derived from host and
port), put with a lease that a background loop keeps alive. Stopping revokes the lease so the
record goes at once; a server that crashes stops refreshing and etcd removes the record when the
lease expires, with nobody cleaning up. When the lease is lost anyway (etcd was away longer than
the TTL) the loop grants a new one and puts the record again; when a refresh fails it retries
with back-off, never later than the next refresh was due.
"""

from __future__ import annotations

import asyncio
import re

from persys.dns.records import DEFAULT_PRIORITY, DEFAULT_WEIGHT, SkyRecord, name_to_key, srv_name
from persys.errors import PersysError
from persys.observability.logging import get_logger
from persys.runtime.backoff import Backoff
from persys.runtime.supervisor import Component, Named, Service, Supervisor
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


class ApiServerRegistration(Component):
    """The SRV registration of one API server: a component whose ``open`` registers, kept alive beside it."""

    def __init__(self, etcd: Etcd, record: SkyRecord, lease_ttl: int, name: str = "dns-registration") -> None:
        super().__init__(name)
        self.etcd = etcd
        self.record = record
        self.lease_ttl = lease_ttl
        self.lease = 0
        self.withdraw = True  # revoke the lease on the way out (False: leave the record to expire)

    async def register(self) -> None:
        """Grant a lease and put the record on it."""
        self.lease = await self.etcd.grant_lease(self.lease_ttl)
        await self.etcd.put(self.record.key, self.record.encode(), lease=self.lease)
        log.info("dns.api_registered", key=self.record.key, host=self.record.host, port=self.record.port,
                 lease=self.lease)

    async def open(self) -> None:
        await self.register()

    def background(self) -> list[Service]:
        return [Named(f"{self.name}/keepalive", self.keep_alive)]

    async def keep_alive(self) -> None:
        """Refresh the lease every third of its TTL; register again when it is lost. Runs until cancelled."""
        interval = max(self.lease_ttl / 3, 0.5)
        retry = Backoff(min(0.5, interval), interval)
        delay = interval
        while True:
            await asyncio.sleep(delay)
            try:
                if not (self.lease and await self.etcd.refresh_lease(self.lease) > 0):
                    log.warning("dns.api_lease_lost", key=self.record.key, lease=self.lease)
                    await self.register()
                retry.reset()
                delay = interval
            except PersysError as e:
                delay = retry.next()
                log.warning("dns.api_keepalive_failed", key=self.record.key, error=str(e), retry_in=round(delay, 3))

    async def cleanup(self) -> None:
        """Revoke the lease, which deletes the record now (unless ``withdraw`` is off)."""
        lease, self.lease = self.lease, 0
        if self.withdraw and lease:
            try:
                await self.etcd.revoke_lease(lease)
            except PersysError as e:
                log.warning("dns.api_revoke_failed", key=self.record.key, error=str(e))

    async def close(self, *, revoke: bool = True) -> None:
        """Stop refreshing; with ``revoke`` also withdraw the record now (else it expires with its lease)."""
        self.withdraw = revoke
        await self.stop()


async def register_api_server(etcd: Etcd, zone: str, host: str, port: int, ttl: int = 15, *,
                              priority: int = DEFAULT_PRIORITY, weight: int = DEFAULT_WEIGHT,
                              supervisor: Supervisor | None = None) -> ApiServerRegistration:
    """Put SRV ``_persys-api._tcp.<zone>`` → ``host:port`` on a lease of ``ttl`` seconds, kept alive.

    The DNS TTL of the record equals the lease TTL so that resolvers never cache it longer than
    it can outlive a crashed server. Raises StoreUnavailable when etcd does not answer. Without
    ``supervisor`` (the process's) it runs under one of its own until ``close()``.
    """
    registration = ApiServerRegistration(etcd, api_record(zone, host, port, ttl, priority, weight), ttl)
    await registration.start(supervisor)
    return registration
