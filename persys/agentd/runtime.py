"""The Runtime protocol every agent backend implements (docker, compose, simulated).

It also owns ``WorkloadState``, the actual state of one workload on this node: the shape the
agent reports in ``GET /v1/workloads`` and in each ``GET /v1/events`` line, and the reasons it
gives when a workload has no usable container: ``Pulling`` while its image is pulled,
``ImagePullFailed`` or ``CreateContainerError`` after its launch failed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from persys.errors import BadRequest, PersysError, RuntimeFailure
from persys.resources.hashing import spec_hash
from persys.resources.phase import ContainerState, DesiredState, LaunchFailure

STATES: tuple[str, ...] = tuple(state.value for state in ContainerState if state != ContainerState.UNKNOWN)
PULLING = "Pulling"
IMAGE_PULL_FAILED = LaunchFailure.IMAGE_PULL_FAILED.value
CREATE_CONTAINER_ERROR = LaunchFailure.CREATE_CONTAINER_ERROR.value


class ImagePullFailed(RuntimeFailure):
    """Raised when a workload's image cannot be pulled or its reference is invalid."""


def failure_message(error: Exception) -> str:
    """What a failed operation says: a Persys error's own message, else the exception's type and text."""
    return error.message if isinstance(error, PersysError) else f"{type(error).__name__}: {error}"


def launch_reason(error: Exception) -> str:
    """The ``reason`` reported for a failed apply: the image could not be had, or anything else."""
    return IMAGE_PULL_FAILED if isinstance(error, ImagePullFailed) else CREATE_CONTAINER_ERROR


@dataclass
class WorkloadState:
    """What is actually running for one workload uid on this node.

    ``reason`` is empty for a container's plain state; ``Pulling`` (state ``pulling``),
    ``ImagePullFailed`` or ``CreateContainerError`` explain a launch in progress or failed.
    """

    uid: str
    name: str = ""
    namespace: str = ""
    node: str = ""
    containerID: str = ""
    state: str = "missing"
    exitCode: int | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    specHash: str = ""
    message: str = ""
    reason: str = ""
    revision: str = ""  # a compose app's checked-out commit
    containerReady: bool | None = None  # what its readiness and startup probes say (None: it has none)
    probeMessage: str = ""  # why it is not ready, from the probes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WorkloadSpec:
    """The parts of a Workload request body the agent acts on, checked once at the edge."""

    uid: str
    name: str
    namespace: str
    spec: dict[str, Any]
    spec_hash: str

    @property
    def type(self) -> str:
        return str(self.spec.get("type") or "container")

    @property
    def wants_running(self) -> bool:
        return bool(self.spec.get("desiredState") != DesiredState.STOPPED)

    @classmethod
    def from_body(cls, uid: str, body: Any) -> WorkloadSpec:
        """Validate the request body of ``POST /v1/workloads/{uid}``; raises BadRequest."""
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise BadRequest("body must be a Workload resource with a spec")
        meta = body.get("metadata") or {}
        if meta.get("uid") and meta["uid"] != uid:
            raise BadRequest(f"metadata.uid {meta['uid']!r} does not match the path uid {uid!r}")
        spec = body["spec"]
        kind = spec.get("type") or "container"
        if kind == "container" and not spec.get("image"):
            raise BadRequest("spec.image is required for a container workload")
        if kind == "compose" and not isinstance(spec.get("compose"), dict):
            raise BadRequest("spec.compose is required for a compose workload")
        if kind not in ("container", "compose"):
            raise BadRequest(f"unknown spec.type {kind!r}")
        return cls(uid=uid, name=str(meta.get("name") or uid), namespace=str(meta.get("namespace") or "default"),
                   spec=spec, spec_hash=spec_hash(_hashable(spec)))


def _hashable(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without resolved credentials: a rotated token must not recreate the workload."""
    compose = spec.get("compose")
    if isinstance(compose, dict) and "auth" in compose:
        return {**spec, "compose": {k: v for k, v in compose.items() if k != "auth"}}
    return spec


def rfc3339(value: str | None) -> str | None:
    """Docker's nanosecond timestamps as RFC 3339 UTC with microseconds; None for the zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    if value.endswith("Z"):
        head, _, frac = value[:-1].partition(".")
        return f"{head}.{(frac + '000000')[:6]}Z"
    match = re.match(r"^([^.]+)(?:\.(\d+))?([+-]\d\d:\d\d)$", value)
    if not match:
        return value
    micros = (match.group(2) or "").ljust(6, "0")[:6]
    parsed = datetime.fromisoformat(f"{match.group(1)}.{micros}{match.group(3)}").astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Runtime(Protocol):
    """A container backend. Every method is keyed by workload uid; unknown uids raise NotFound.

    A runtime publishes every state change it observes to the ``EventHub`` it was built with.
    """

    name: str

    async def open(self) -> None:
        """Connect and rebuild what this node runs (after an agent restart nothing is relaunched)."""

    async def close(self) -> None:
        """Release connections and background tasks; never stops a workload."""

    async def apply(self, workload: WorkloadSpec) -> WorkloadState:
        """Make the workload exist with this spec: nothing if the same hash is running, else replace."""

    async def start(self, uid: str) -> WorkloadState: ...

    async def stop(self, uid: str, timeout: float = 10.0) -> WorkloadState: ...

    async def restart(self, uid: str) -> WorkloadState: ...

    async def remove(self, uid: str) -> None: ...

    async def get(self, uid: str) -> WorkloadState:
        """The actual state; raises NotFound for a uid this node does not run."""

    async def list(self) -> list[WorkloadState]: ...

    async def logs(self, uid: str, tail: int = 50) -> str: ...

    def follow_logs(self, uid: str, tail: int = 50) -> AsyncGenerator[str, None]: ...
