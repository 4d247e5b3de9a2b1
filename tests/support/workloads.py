"""Workloads for tests, from one factory: busybox by default, any spec field by keyword.

``manifest`` is the wire shape (what ``persys apply`` sends), ``workload`` the parsed
``Resource`` (what the store and the controllers hold), ``agent_workload`` the body a
controller sends an agent (a uid, a node, a container that sleeps). Each builds on the one
before, so a test states only what matters to it: ``workload("db", labels={"app": "db"})``,
``workload("job", restartPolicy="Never", status={"phase": "Exited"})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from persys.resources import REGISTRY, Resource

IMAGE = "persys/busybox:local"
SLEEP = ["sleep", "3600"]


def manifest(name: str = "web", *, namespace: str = "default", labels: Mapping[str, str] | None = None,
             uid: str = "", **spec: Any) -> dict[str, Any]:
    """A Workload as a manifest: ``spec`` keywords add to or override ``image``."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = dict(labels)
    if uid:
        metadata["uid"] = uid
    return {"apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": metadata, "spec": {"image": IMAGE, **spec}}


def workload(name: str = "web", *, namespace: str = "default", labels: Mapping[str, str] | None = None,
             status: Mapping[str, Any] | None = None, **spec: Any) -> Resource:
    """``manifest(...)`` parsed by the registry, with ``status`` as a controller would have written it."""
    obj = REGISTRY.parse(manifest(name, namespace=namespace, labels=labels, **spec))
    if status is not None:
        obj.status = dict(status)
    return obj


def agent_workload(uid: str, node: str, **spec: Any) -> dict[str, Any]:
    """A Workload as controllers send it to an agent: ``metadata.uid`` and ``spec.nodeName`` set."""
    container: dict[str, Any] = {"type": "container", "command": SLEEP, "network": "host", "nodeName": node}
    return manifest(f"w-{uid[:8]}", uid=uid, **{**container, **spec})
