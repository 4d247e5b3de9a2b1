"""Resources: typed objects, their kinds, schemas, quantities, selectors and manifests."""

from persys.resources.kinds import EVENT, NODE, REGISTRY, SECRET, WORKLOAD
from persys.resources.model import API_VERSION, ObjectKey, ObjectMeta, Resource, Uid, now_iso
from persys.resources.registry import Kind, Registry
from persys.resources.selector import Selector

__all__ = [
    "API_VERSION", "EVENT", "NODE", "REGISTRY", "SECRET", "WORKLOAD", "Kind", "ObjectKey", "ObjectMeta",
    "Registry", "Resource", "Selector", "Uid", "now_iso",
]
