"""The etcd key layout of DESIGN.md, in one place.

Built-in kinds (``persys.dev``) keep their keys under ``/persys/registry/<plural>/``; custom kinds
are stored under their group too, ``/persys/registry/<group>/<plural>/``, so that two groups
never share a prefix. A group always holds a dot and a plural never does, so no custom prefix
can be the prefix of a built-in one or of another group's.
"""

from __future__ import annotations

from persys.resources.registry import Kind

REGISTRY_PREFIX = "/persys/registry/"
LEADER_PREFIX = "/persys/leader/"
STATS_RECONCILER = "/persys/stats/reconciler"
SKYDNS_PREFIX = "/skydns/"


def _root(kind: Kind) -> str:
    return f"{REGISTRY_PREFIX}{kind.plural}/" if kind.builtin else f"{REGISTRY_PREFIX}{kind.group}/{kind.plural}/"


def object_key(kind: Kind, namespace: str, name: str) -> str:
    """``/persys/registry/[<group>/]<plural>/<namespace>/<name>``, without namespace for cluster kinds."""
    if kind.namespaced:
        return f"{_root(kind)}{namespace}/{name}"
    return f"{_root(kind)}{name}"


def kind_prefix(kind: Kind, namespace: str | None = None) -> str:
    """The prefix of every object of ``kind`` (in ``namespace`` when given)."""
    if kind.namespaced and namespace:
        return f"{_root(kind)}{namespace}/"
    return _root(kind)


def leader_key(component: str) -> str:
    return f"{LEADER_PREFIX}{component}"
