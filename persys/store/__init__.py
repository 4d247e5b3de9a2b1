"""The store: objects and raw keys in etcd. Only the API and the controllers use it."""

from persys.store.etcd import KV, Compare, Etcd, EtcdTLS, RawEvent
from persys.store.objects import Fence, ObjectStore, WatchEvent, leader_fence

__all__ = ["KV", "Compare", "Etcd", "EtcdTLS", "Fence", "ObjectStore", "RawEvent", "WatchEvent", "leader_fence"]
