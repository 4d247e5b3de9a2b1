"""The etcd key layout of DESIGN.md, in one place."""

from __future__ import annotations

from persys.resources.registry import Kind

REGISTRY_PREFIX = "/persys/registry/"
LEADER_PREFIX = "/persys/leader/"
STATS_RECONCILER = "/persys/stats/reconciler"
SKYDNS_PREFIX = "/skydns/"


def object_key(kind: Kind, namespace: str, name: str) -> str:
    """``/persys/registry/<plural>/<namespace>/<name>``, or without namespace for cluster kinds."""
    if kind.namespaced:
        return f"{REGISTRY_PREFIX}{kind.plural}/{namespace}/{name}"
    return f"{REGISTRY_PREFIX}{kind.plural}/{name}"


def kind_prefix(kind: Kind, namespace: str | None = None) -> str:
    """The prefix of every object of ``kind`` (in ``namespace`` when given)."""
    if kind.namespaced and namespace:
        return f"{REGISTRY_PREFIX}{kind.plural}/{namespace}/"
    return f"{REGISTRY_PREFIX}{kind.plural}/"


def leader_key(component: str) -> str:
    return f"{LEADER_PREFIX}{component}"
