"""The boundary with the Docker Engine API: timed, traced calls and inspect → WorkloadState.

Every Docker call goes through ``docker_call`` so that it is measured
(``persys_agent_docker_call_duration_seconds{call}``), traced, and its ``DockerError``
wrapped into a Persys error (``NotFound`` for 404, ``RuntimeFailure`` otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
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
LABEL_HASH = "persys.dev/spec-hash"
LABEL_COMPOSE_PROJECT = "com.docker.compose.project"


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
