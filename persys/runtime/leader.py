"""Leader election on an etcd lease, and the fence every leader write carries.

A candidate writes ``/persys/leader/<component>`` with a create-if-absent transaction bound
to a lease of ``ttl`` seconds, then keeps the lease alive from a thread of its own
(``persys.store.leasekeeper``: the event loop can be busier than a short lease allows). It loses
leadership when no keep-alive was answered for the TTL, the lease has expired, or the key no longer
is the one it created. A candidate that finds the key taken watches it, and campaigns again the moment
it is deleted (a resignation, or the lease of a killed leader expiring), not at its next retry.
The ``Fence`` (the key's create revision) goes into every store write, so a deposed leader that
has not noticed yet still cannot change anything: etcd refuses the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

from prometheus_client import Gauge

from persys.errors import NotLeader, PersysError, StoreUnavailable
from persys.observability.logging import get_logger
from persys.store.etcd import Compare, Etcd
from persys.store.keys import leader_key
from persys.store.leasekeeper import LeaseKeeper
from persys.store.objects import Fence, leader_fence

IS_LEADER = Gauge("persys_leader", "1 while this process holds the leader lease", ["component"])

log = get_logger("leader")


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{id(object()):x}"


class LeaderElector:
    """Campaigns for, holds and gives up the leadership of one component."""

    def __init__(self, etcd: Etcd, component: str, *, identity: str | None = None, ttl: int = 4,
                 retry_interval: float | None = None, stall_limit: float = 30.0) -> None:
        """``stall_limit``: seconds this process's event loop may be stuck before its lease is let go."""
        self.etcd = etcd
        self.component = component
        self.key = leader_key(component)
        self.identity = identity or default_identity()
        self.ttl = max(int(ttl), 1)
        self.retry_interval = retry_interval if retry_interval is not None else max(self.ttl / 4, 0.2)
        self.stall_limit = stall_limit
        self.lease_id: int | None = None
        self._fence: Fence | None = None
        self._seen = 0  # the revision at which this candidate last saw the key taken

    @property
    def is_leader(self) -> bool:
        return self._fence is not None

    def fence(self) -> Fence:
        """The current fence; raises NotLeader when this process does not lead."""
        if self._fence is None:
            raise NotLeader(f"not the leader of {self.component}")
        return self._fence

    async def acquire(self) -> Fence:
        """Wait until this process is leader; the fence of its term."""
        while True:
            try:
                fence = await self._try_acquire()
            except StoreUnavailable as e:
                log.warning("leader election: store unavailable", component=self.component, error=str(e))
                fence = None
            if fence is not None:
                self._fence = fence
                IS_LEADER.labels(self.component).set(1)
                log.info("became leader", component=self.component, identity=self.identity)
                return fence
            await self._vacancy()

    async def _vacancy(self) -> None:
        """Return when the leader key is deleted, or after ``retry_interval`` (whichever comes first)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.retry_interval):
                try:
                    async for event in self.etcd.watch(self.key, self._seen + 1):
                        if event.key == self.key and event.type == "DELETE":
                            return
                except PersysError:  # etcd unreachable, or the revision compacted: wait out the interval
                    await asyncio.sleep(self.retry_interval)

    async def _try_acquire(self) -> Fence | None:
        current = await self.etcd.get(self.key)
        if current is not None:
            self._seen = current.mod_revision
            return None
        lease = await self.etcd.grant_lease(self.ttl)
        ok, _ = await self.etcd.txn_put(self.key, self.identity.encode(), [Compare(self.key, "create", 0)],
                                        lease=lease)
        kv = await self.etcd.get(self.key) if ok else None
        if kv is None or kv.lease != lease:
            with contextlib.suppress(StoreUnavailable):
                await self.etcd.revoke_lease(lease)
            return None
        self.lease_id = lease
        return leader_fence(kv)

    async def hold(self) -> None:
        """Keep the lease alive; returns when leadership is lost (never while it holds).

        The keep-alive itself runs in a thread (``LeaseKeeper``): this loop may be seconds behind under
        load, longer than the lease. Here the loop only beats, and checks that the lease and the key are
        still this term's."""
        if self.lease_id is None:
            return
        interval = max(self.ttl / 3, 0.1)
        keeper = LeaseKeeper(self.etcd, self.lease_id, interval=interval, stall_limit=self.stall_limit)
        keeper.start()
        try:
            while True:
                await asyncio.sleep(interval)
                keeper.beat()
                if keeper.gone:
                    log.warning("lost leadership", component=self.component, reason="lease gone")
                    return
                if time.monotonic() - keeper.last_ok >= self.ttl:
                    log.warning("lost leadership", component=self.component,
                                reason=f"no keep-alive answered for {self.ttl}s")
                    return
                try:
                    if not await self._still_leader():
                        log.warning("lost leadership", component=self.component, reason="key gone or taken")
                        return
                except StoreUnavailable:
                    pass  # the keep-alive decides: etcd may answer it and not this loop
        finally:
            keeper.stop()
            self._step_down()

    async def _still_leader(self) -> bool:
        """The leader key is still the one this term created, on its lease."""
        fence = self._fence
        if fence is None or self.lease_id is None:
            return False
        kv = await self.etcd.get(self.key)
        return kv is not None and kv.create_revision == fence.create_revision and kv.lease == self.lease_id

    def _step_down(self) -> None:
        self._fence = None
        IS_LEADER.labels(self.component).set(0)

    async def resign(self) -> None:
        """Give up leadership now (revoke the lease) so that another process takes over at once."""
        lease, self.lease_id = self.lease_id, None
        self._step_down()
        if lease is not None:
            with contextlib.suppress(StoreUnavailable):
                await self.etcd.revoke_lease(lease)
