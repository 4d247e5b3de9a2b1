"""Leader election for operators through the API: a ``Lease`` object and compare-and-swap.

Operators never see etcd, so they cannot hold the etcd lease the built-in controllers elect
their leader on. They elect theirs the way client-go's ``leaderelection`` does, on a Lease
object (``persys.resources.lease``), every write a compare-and-swap on its resourceVersion:

- A candidate creates the Lease, or takes it over when it is released (no holder) or has
  expired. Expired is judged on the candidate's own monotonic clock: the Lease must have shown
  the same resourceVersion for ``leaseDurationSeconds`` since this candidate first saw it, so
  clocks of different machines are never compared. Two candidates racing to take over both
  write against the resourceVersion they read; one wins, the other gets a 409.
- The leader renews (a CAS write of ``renewTime``) every ``renew_interval`` seconds. A renewal
  that answers 409 or 404 means someone else holds the Lease now: leadership ends at once.

Fencing: a deposed leader cannot write. Every write an operator makes goes through a
``FencedClient``, which refuses (``NotLeader``, before anything is sent) once the term is
over. The term ends when a renewal fails with a conflict, and in any case ``renew_deadline``
seconds after the last successful renewal was *sent* (the same deadline bounds an acquisition).
A successor takes over only after observing the Lease unchanged for ``leaseDurationSeconds``
from a moment after that renewal was written, so with ``renew_deadline`` < ``duration`` the old
leader's last write is always sent before the successor's first: the gap (``duration -
renew_deadline``, 5 s by default) absorbs the time a write spends in flight and the drift
between two monotonic clocks. The residual risk is client-go's: a write sent just in time that
spends longer than that gap inside the network or the API server. A lost term also cancels the
controllers (``NotLeader`` ends them, as in ``persys.runtime.Manager``) before they campaign again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from persys.client.api import ApiClient
from persys.errors import Conflict, NotFound, NotLeader, PersysError
from persys.observability.logging import get_logger
from persys.resources.lease import LEASE
from persys.resources.model import ObjectMeta, Resource, now_iso
from persys.runtime.leader import IS_LEADER, default_identity

log = get_logger("operator.leader")

READ_METHODS = frozenset({"GET", "HEAD"})


class LeaseElector:
    """Campaigns for, holds and gives up the Lease ``namespace/name`` through the API."""

    def __init__(self, client: ApiClient, name: str, *, namespace: str = "default", identity: str | None = None,
                 duration: int = 15, renew_deadline: float | None = None, retry_interval: float | None = None) -> None:
        self.client = client
        self.name, self.namespace = name, namespace
        self.identity = identity or default_identity()
        self.duration = max(int(duration), 1)
        self.renew_deadline = renew_deadline if renew_deadline is not None else self.duration * 2 / 3
        if not 0 < self.renew_deadline < self.duration:
            raise ValueError(f"renew_deadline must be between 0 and the lease duration ({self.duration}s)")
        self.retry_interval = retry_interval if retry_interval is not None else max(self.duration / 8, 0.1)
        self.renew_interval = min(self.retry_interval, self.renew_deadline / 3)
        self._lease: Resource | None = None  # the Lease as this term last wrote it (its resourceVersion: the CAS)
        self._valid_until = 0.0  # monotonic: no write may start after it
        self._observed: tuple[str, float] | None = None  # another holder's resourceVersion, when first seen

    # -- the fence --

    @property
    def is_leader(self) -> bool:
        return self._lease is not None and time.monotonic() < self._valid_until

    def check(self) -> None:
        """Raise NotLeader unless this process holds the Lease right now (called before every write)."""
        if not self.is_leader:
            raise NotLeader(f"{self.identity} does not hold lease {self.namespace}/{self.name}; write refused")

    # -- campaigning --

    async def acquire(self) -> None:
        """Wait until this process holds the Lease."""
        while True:
            try:
                if await self._try_acquire():
                    IS_LEADER.labels(self.name).set(1)
                    log.info("became leader", lease=f"{self.namespace}/{self.name}", identity=self.identity)
                    return
            except PersysError as e:  # the API unreachable, a 409 from a rival: try again
                log.debug("leader election: attempt failed", lease=self.name, error=e.message)
            await asyncio.sleep(self.retry_interval)

    async def _try_acquire(self) -> bool:
        try:
            current = await self.client.get(LEASE.kind, self.name, self.namespace)
        except NotFound:
            return await self._write(self._fresh(), taking_over=True) is not None
        if not self._takeable(current):
            return False
        return await self._write(current, taking_over=True) is not None

    def _takeable(self, lease: Resource) -> bool:
        holder = str(lease.spec.get("holderIdentity") or "")
        if holder in ("", self.identity):
            return True  # released, or ours from an earlier term of this identity
        now, version = time.monotonic(), lease.metadata.resourceVersion
        if self._observed is None or self._observed[0] != version:
            self._observed = (version, now)  # the holder renewed (or first sight): the wait starts again
            return False
        return now - self._observed[1] >= int(lease.spec.get("leaseDurationSeconds") or self.duration)

    def _fresh(self) -> Resource:
        return Resource(kind=LEASE.kind, metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                        spec={"leaseTransitions": 0})

    async def _write(self, base: Resource, *, taking_over: bool) -> Resource | None:
        """Write ``base`` (CAS on its resourceVersion) as held by this process; the term's new deadline."""
        lease = base.copy()
        now = now_iso()
        spec = lease.spec
        if taking_over:
            if lease.metadata.resourceVersion and spec.get("holderIdentity") != self.identity:
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1  # from another, or released
            spec["acquireTime"] = now
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self.duration, renewTime=now)
        sent = time.monotonic()
        if lease.metadata.resourceVersion:
            written, _ = await self.client.apply(lease)
        else:
            written = await self.client.create(lease)
        self._lease, self._valid_until = written, sent + self.renew_deadline
        return written

    # -- holding --

    async def hold(self) -> None:
        """Renew until the term ends; returns when it has (never while this process leads)."""
        try:
            while True:
                await asyncio.sleep(self.renew_interval)
                lease, left = self._lease, self._valid_until - time.monotonic()
                if lease is None or left <= 0:
                    log.warning("lost leadership", lease=self.name, reason="no renewal within the deadline")
                    return
                try:
                    async with asyncio.timeout(left):  # not wait_for: in 3.11 it can swallow a cancel
                        await self._write(lease, taking_over=False)
                except (Conflict, NotFound):
                    log.warning("lost leadership", lease=self.name, reason="the lease changed hands")
                    return
                except (PersysError, TimeoutError) as e:  # unreachable: keep trying until the deadline
                    log.warning("lease renewal failed", lease=self.name, error=str(e))
        finally:
            self._step_down()

    def _step_down(self) -> None:
        self._valid_until = 0.0
        IS_LEADER.labels(self.name).set(0)

    async def resign(self) -> None:
        """Give the Lease up now (no holder) so that a standby takes over without waiting it out."""
        lease, self._lease = self._lease, None
        self._step_down()
        if lease is None:
            return
        released = lease.copy()
        released.spec["holderIdentity"] = ""
        with contextlib.suppress(PersysError, TimeoutError):
            await asyncio.wait_for(self.client.apply(released), 5.0)  # CAS: a lease taken meanwhile is left alone


class FencedClient(ApiClient):
    """An ApiClient whose writes need the Lease: every request but a read checks the fence first."""

    def __init__(self, server: str, *, elector: LeaseElector, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self.elector = elector

    async def request(self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None) -> tuple[int, Any, Mapping[str, str]]:
        if method.upper() not in READ_METHODS:
            self.elector.check()
        return await super().request(method, path, body=body, params=params, headers=headers)
