"""The DNS registrar: SkyDNS records for every Running, Ready workload that asks for a ``service``.

For each workload it computes the records it should have (``persys.dns.records``: an A
record for ``<service>.<namespace>.<zone>`` pointing at its node's IP and an SRV record for
the service port), compares them with what etcd holds for that workload and writes the
difference, every write fenced by the leader lease. A workload that stops, moves, loses its
service or is deleted loses (or moves) its records. Node address changes re-register every
workload on that node.

Records of one workload carry its name as their unique last label, so they are found by
owner. The registrar keeps an in-memory index of the zone's workload records, loaded from
etcd when it starts leading and again at every resync; each load enqueues the owners no
longer in the cache, so records orphaned while nobody was leading are removed too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from persys.controllers.conditions import get_condition
from persys.dns.records import DEFAULT_TTL, node_ip, owner_of, workload_records, zone_prefix
from persys.errors import NotLeader
from persys.resources.kinds import NODE, WORKLOAD
from persys.resources.model import ObjectKey, Resource
from persys.resources.phase import DesiredState, Phase
from persys.runtime.controller import Controller, Result, Watch
from persys.runtime.informer import DELETED, IndexFunc
from persys.runtime.manager import Manager

BY_RUNNING_NODE = "dns/running-node"

Owner = tuple[str, str]  # (namespace, workload name)


def running_node(workload: Resource) -> list[str]:
    """Index function: the node a workload runs on (status first: that is where it really is)."""
    node = workload.status.get("nodeName") or workload.spec.get("nodeName")
    return [str(node)] if node else []


def serving(workload: Resource | None) -> bool:
    """Whether ``workload`` should be in DNS: Running and Ready (its readiness probes pass), wanted running,
    not being deleted, with a service."""
    return (workload is not None and not workload.metadata.deletionTimestamp
            and workload.status.get("phase") == Phase.RUNNING
            and (get_condition(workload.status, "Ready") or {}).get("status") == "True"
            and workload.spec.get("desiredState") != DesiredState.STOPPED
            and bool((workload.spec.get("service") or {}).get("name")))


def _record_inputs(workload: Resource) -> tuple[object, ...]:
    """What ``desired`` reads of a workload (besides its node's address, watched on the Node)."""
    return serving(workload), running_node(workload), workload.spec.get("service"), workload.spec.get("ports"), \
        workload.metadata.uid


class DnsRegistrar(Controller):
    """Keeps the SkyDNS A and SRV records of workloads in ``zone`` equal to what they should be."""

    kind = WORKLOAD.kind
    name = "dns-registrar"
    workers = 1  # one writer: the owner index never races with itself
    resync_period = 60.0

    def __init__(self, zone: str = "persys.local", ttl: int = DEFAULT_TTL,
                 resync_period: float | None = None) -> None:
        super().__init__()
        self.zone = zone.rstrip(".").lower()
        self.ttl = ttl
        if resync_period is not None:
            self.resync_period = resync_period
        self._index: dict[Owner, dict[str, bytes]] | None = None

    def indexes(self) -> Mapping[str, IndexFunc]:
        return {BY_RUNNING_NODE: running_node}

    def watches(self) -> Sequence[Watch]:
        return (Watch(NODE.kind, self._node_keys),)

    def declare(self) -> None:
        self.nodes = self.informer(NODE.kind)

    def setup(self) -> None:
        self._index = None  # leadership (re)starts: etcd may have changed while another process led

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        """Only changes that can move a record: serving or not, the service, the node it runs on."""
        if old is None or event_type == DELETED or _record_inputs(obj) != _record_inputs(old):
            self.queue.add(obj.key)

    def _node_keys(self, event_type: str, obj: Resource, old: Resource | None) -> Iterator[ObjectKey]:
        if old is None or event_type == DELETED or node_ip(old) != node_ip(obj):
            yield from (w.key for w in self.cache.by_index(BY_RUNNING_NODE, obj.metadata.name))

    def on_resync(self) -> None:
        self._index = None
        self.enqueue_all()

    def desired(self, workload: Resource | None) -> dict[str, bytes]:
        """The records ``workload`` should have, key → value (none when it is not serving)."""
        if workload is None or not serving(workload):
            return {}
        nodes = running_node(workload)
        node = self.nodes.get(ObjectKey(NODE.kind, "", nodes[0])) if nodes else None
        ip = node_ip(node) if node is not None else ""
        return {r.key: r.encode() for r in workload_records(workload, ip, self.zone, self.ttl)}

    async def _load(self) -> dict[Owner, dict[str, bytes]]:
        """Index the zone's workload records by owner; enqueue owners the cache no longer has."""
        kvs, _ = await self.store.etcd.range(zone_prefix(self.zone))
        index: dict[Owner, dict[str, bytes]] = {}
        for kv in kvs:
            owner = owner_of(kv.key, self.zone)
            if owner is not None:
                index.setdefault(owner, {})[kv.key] = kv.value
        for namespace, name in index:
            key = ObjectKey(self.kind, namespace, name)
            if self.cache.get(key) is None:
                self.queue.add(key)
        self.log.debug("dns records indexed", owners=len(index), records=len(kvs))
        return index

    async def reconcile(self, key: ObjectKey) -> Result:
        if self._index is None:
            self._index = await self._load()
        owner = (key.namespace, key.name)
        actual = dict(self._index.get(owner, {}))
        desired = self.desired(self.cache.get(key))
        for record_key, value in desired.items():
            if actual.get(record_key) != value:
                await self._put(owner, record_key, value)
        for record_key in actual.keys() - desired.keys():
            await self._delete(owner, record_key)
        if actual.keys() != desired.keys():
            self.log.info("dns records updated", workload=str(key), records=sorted(desired))
        return Result()

    async def _put(self, owner: Owner, key: str, value: bytes) -> None:
        ok, _ = await self.store.etcd.txn_put(key, value, [self.fence.compare()])
        if not ok:
            raise NotLeader(f"lost leadership; DNS record {key} not written")
        assert self._index is not None
        self._index.setdefault(owner, {})[key] = value

    async def _delete(self, owner: Owner, key: str) -> None:
        ok, _ = await self.store.etcd.txn_delete(key, [self.fence.compare()])
        if not ok:
            raise NotLeader(f"lost leadership; DNS record {key} not removed")
        assert self._index is not None
        records = self._index.get(owner, {})
        records.pop(key, None)
        if not records:
            self._index.pop(owner, None)


def dns_registrar(zone: str = "persys.local", ttl: int = DEFAULT_TTL) -> Callable[[Manager], None]:
    """An ``extra`` for ``build_manager``: adds the DNS registrar for ``zone`` to the manager."""
    def add(manager: Manager) -> None:
        manager.add(DnsRegistrar(zone, ttl))
    return add
