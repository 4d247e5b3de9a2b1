"""Conditions (``status.conditions``) of workloads and nodes, and what they say about a node."""

from __future__ import annotations

from typing import Any

from persys.resources.model import Resource
from persys.runtime.clock import from_iso

FINALIZER = "persys.dev/container"
RECONCILE_REQUESTED = "persys.dev/reconcile-requested"


def get_condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def set_condition(status: dict[str, Any], type_: str, value: str, reason: str, message: str, now: str) -> None:
    """Set one condition in place; ``lastTransitionTime`` moves only when the value changes."""
    conditions = [dict(c) for c in status.get("conditions") or []]
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now
            cond.update(status=value, reason=reason, message=message)
            break
    else:
        conditions.append({"type": type_, "status": value, "reason": reason, "message": message,
                           "lastTransitionTime": now})
    status["conditions"] = conditions


def node_ready(node: Resource | None) -> bool:
    if node is None or node.metadata.deletionTimestamp:
        return False
    cond = get_condition(node.status, "Ready")
    return cond is not None and cond.get("status") == "True"


def node_lost_in(node: Resource | None, now: float, timeout: float) -> float | None:
    """Seconds until a NotReady node counts as lost (≤ 0: lost; no Node object: lost now); None if Ready."""
    if node is None:
        return 0.0
    if node_ready(node):
        return None
    cond = get_condition(node.status, "Ready") or {}
    since = from_iso(cond.get("lastTransitionTime")) or from_iso(node.status.get("lastHeartbeatTime"))
    return since + timeout - now if since is not None else None


def node_labels(node: Resource) -> dict[str, str]:
    """The labels a nodeSelector is matched against: metadata labels, spec labels, and the hostname."""
    labels = {"persys.dev/hostname": node.metadata.name}
    labels.update(node.metadata.labels)
    labels.update(node.spec.get("labels") or {})
    return labels


BY_NODE, BY_UID = "node", "uid"


def workload_node(workload: Resource) -> list[str]:
    """Index function: the node a workload is bound to."""
    return [str(workload.spec["nodeName"])] if workload.spec.get("nodeName") else []


def workload_uid(workload: Resource) -> list[str]:
    return [workload.metadata.uid] if workload.metadata.uid else []
