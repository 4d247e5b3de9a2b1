"""The SkyDNS records of one zone in memory, kept current by an etcd watch.

The DNS server answers from here, never from etcd directly: one range at start, then the
watch's changes. When the watch falls behind a compaction (Gone) or etcd goes away
(StoreUnavailable), the cache relists with back-off and replaces its content, so records
deleted meanwhile vanish too. Until the first list succeeds the cache is not ``ready`` and
the server answers SERVFAIL rather than a false NXDOMAIN. Any other error ends ``run``: the
DNS server's supervisor logs it, turns ``/healthz`` red and runs it again (a relist).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterator

from persys.dns.records import SkyRecord, name_to_key, zone_prefix
from persys.errors import Gone, StoreUnavailable
from persys.observability.logging import get_logger
from persys.runtime.backoff import Backoff
from persys.store.etcd import KV, Etcd

log = get_logger("dns")

RETRY_INITIAL = 0.2
RETRY_MAX = 5.0


class RecordCache:
    """Every record under ``/skydns/<zone reversed>/``, indexed by key in sorted order."""

    def __init__(self, etcd: Etcd, zone: str, name: str = "dns/watch") -> None:
        self.name = name  # its task's name under the supervisor
        self.etcd = etcd
        self.zone = zone
        self.prefix = zone_prefix(zone)
        self.revision = 0
        self.ready = asyncio.Event()
        self._records: dict[str, SkyRecord] = {}
        self._keys: list[str] = []

    def __len__(self) -> int:
        return len(self._records)

    def subtree(self, name: str) -> Iterator[SkyRecord]:
        """Records at ``name`` or below it (the CoreDNS etcd plugin's prefix semantics)."""
        key = name_to_key(name)
        if key in self._records:
            yield self._records[key]
        start = bisect.bisect_left(self._keys, key + "/")
        for k in self._keys[start:]:
            if not k.startswith(key + "/"):
                break
            yield self._records[k]

    def exact(self, name: str) -> SkyRecord | None:
        return self._records.get(name_to_key(name))

    def exists(self, name: str) -> bool:
        """Whether ``name`` owns records or is an ancestor of some (an empty non-terminal)."""
        return next(self.subtree(name), None) is not None

    def _put(self, key: str, value: bytes) -> None:
        try:
            record = SkyRecord.decode(key, value)
        except ValueError as e:
            log.warning("dns.bad_record", key=key, error=str(e))
            self._delete(key)
            return
        if key not in self._records:
            bisect.insort(self._keys, key)
        self._records[key] = record

    def _delete(self, key: str) -> None:
        if self._records.pop(key, None) is not None:
            i = bisect.bisect_left(self._keys, key)
            if i < len(self._keys) and self._keys[i] == key:
                del self._keys[i]

    def _replace(self, kvs: list[KV], revision: int) -> None:
        self._records.clear()
        self._keys.clear()
        for kv in kvs:
            self._put(kv.key, kv.value)
        self.revision = revision

    async def run(self) -> None:
        """List, then follow the watch; relist on compaction or when etcd breaks. Runs until cancelled."""
        retry = Backoff(RETRY_INITIAL, RETRY_MAX)
        while True:
            try:
                kvs, revision = await self.etcd.range(self.prefix)
                self._replace(kvs, revision)
                self.ready.set()
                log.debug("dns.listed", records=len(self._records), revision=revision)
                retry.reset()
                async for event in self.etcd.watch(self.prefix, revision + 1):
                    if event.type == "PUT":
                        self._put(event.key, event.value)
                    else:
                        self._delete(event.key)
                    self.revision = max(self.revision, event.revision)
            except (Gone, StoreUnavailable) as e:
                delay = retry.next()
                log.info("dns.relist", reason=str(e), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
