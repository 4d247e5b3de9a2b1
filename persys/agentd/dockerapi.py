"""The boundary with the Docker Engine API: timed, traced calls, ownership labels, inspect → WorkloadState.

Every Docker call goes through ``docker_call`` so that it is measured
(``persys_agent_docker_call_duration_seconds{call}``), traced, and its ``DockerError``
wrapped into a Persys error (``NotFound`` for 404, ``RuntimeFailure`` otherwise).

One dockerd may host several clusters, and node names repeat across them (they default to the
host name), so a container belongs to a cluster *and* a node: ``Owner`` stamps both labels and
decides what an agent may claim, report and remove. A container from before the cluster label
existed (``persys.dev/node`` alone) is adopted by whichever cluster's agent runs that node, so
an upgrade loses nothing; Docker labels are immutable, so it keeps its old labels.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiodocker.exceptions import DockerError
from prometheus_client import Histogram

from persys.agentd.runtime import STATES, WorkloadState, rfc3339
from persys.errors import Conflict, NotFound, RuntimeFailure
from persys.observability.tracing import tracer

DOCKER_SECONDS = Histogram("persys_agent_docker_call_duration_seconds", "Docker Engine API call duration",
                           ["call"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

LABEL_UID = "persys.dev/uid"
LABEL_NAME = "persys.dev/name"
LABEL_NAMESPACE = "persys.dev/namespace"
LABEL_NODE = "persys.dev/node"
LABEL_CLUSTER = "persys.dev/cluster"
LABEL_HASH = "persys.dev/spec-hash"
LABEL_COMPOSE_PROJECT = "com.docker.compose.project"


@dataclass(frozen=True)
class Owner:
    """One node of one cluster: the labels it stamps and the containers it claims."""

    node: str
    cluster: str = ""  # "": an agent with no cluster id, which stamps and claims as before the label

    def labels(self) -> dict[str, str]:
        """The ownership labels of a container this agent creates."""
        return {LABEL_NODE: self.node, **({LABEL_CLUSTER: self.cluster} if self.cluster else {})}

    def filters(self) -> dict[str, list[str]]:
        """Docker's label filter for candidates (it cannot match a missing label: ``claims`` decides)."""
        return {"label": [f"{LABEL_NODE}={self.node}"]}

    def claims(self, labels: Mapping[str, str]) -> bool:
        """Ours: this node, and this cluster or none (a container from before the cluster label)."""
        return labels.get(LABEL_NODE) == self.node and labels.get(LABEL_CLUSTER, "") in ("", self.cluster)


def container_name(uid: str) -> str:
    return f"persys-{uid}"


@contextmanager
def docker_call(call: str, what: str = "") -> Iterator[None]:
    """Time and trace one Docker call; translate its errors."""
    started = time.monotonic()
    with tracer("persys.agent").start_as_current_span(f"docker.{call}") as span:
        if what:
            span.set_attribute("docker.object", what)
        try:
            yield
        except DockerError as e:
            message = str(e.message if hasattr(e, "message") else e)
            if e.status == 404:
                raise NotFound(f"{what or call}: {message}") from e
            if e.status == 409:
                raise Conflict(f"{what or call}: {message}") from e
            raise RuntimeFailure(f"docker {call} {what}: {message}".replace("  ", " ")) from e
        finally:
            DOCKER_SECONDS.labels(call).observe(time.monotonic() - started)


def state_from_inspect(info: dict[str, Any], node: str) -> WorkloadState:
    """The WorkloadState of one inspected container."""
    labels = (info.get("Config") or {}).get("Labels") or {}
    raw = info.get("State") or {}
    status = str(raw.get("Status") or "dead")
    state = status if status in STATES else ("exited" if status == "removing" else "dead")
    message = str(raw.get("Error") or "")
    if raw.get("OOMKilled"):
        message = "OOMKilled" + (f": {message}" if message else "")
    return WorkloadState(
        uid=str(labels.get(LABEL_UID, "")),
        name=str(labels.get(LABEL_NAME, "")),
        namespace=str(labels.get(LABEL_NAMESPACE, "")),
        node=str(labels.get(LABEL_NODE, node)),
        containerID=str(info.get("Id", "")),
        state=state,
        exitCode=None if state in ("created", "running", "paused") else int(raw.get("ExitCode") or 0),
        startedAt=rfc3339(raw.get("StartedAt")),
        finishedAt=None if state == "running" else rfc3339(raw.get("FinishedAt")),
        specHash=str(labels.get(LABEL_HASH, "")),
        message=message,
    )
