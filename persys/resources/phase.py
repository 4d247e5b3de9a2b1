"""The words of a Workload's status: its phases, its container's states, and launch-failure reasons.

Every module that reads or writes a phase or a container state uses these enums, so a typo is
a NameError and the list of phases lives in one place (the Workload schema's ``status.phase``
enum is built from ``Phase``). They are ``str`` enums: they compare equal to the JSON strings
stored in etcd and reported by agents.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where a Workload is in its life (``status.phase``), derived from its other fields."""

    PENDING = "Pending"                        # not bound to a node
    SCHEDULED = "Scheduled"                    # bound, no container yet
    PULLING = "Pulling"                        # the agent is pulling the image
    IMAGE_PULL_BACKOFF = "ImagePullBackOff"    # the image could not be pulled; retried with back-off
    CREATE_CONTAINER_ERROR = "CreateContainerError"  # the agent could not create or start it; back-off
    STARTING = "Starting"                      # launched, not running yet
    RUNNING = "Running"
    EXITED = "Exited"                          # exited, and that is final or a restart is due
    CRASH_LOOP_BACKOFF = "CrashLoopBackOff"    # exited, waiting out the restart back-off
    STOPPED = "Stopped"                        # desiredState Stopped, and it is
    FAILED = "Failed"                          # exited non-zero with restartPolicy Never, or dead
    UNKNOWN = "Unknown"                        # its node is not ready: nobody can tell


class ContainerState(StrEnum):
    """What an agent reports about a workload's container (``status.containerState``)."""

    PULLING = "pulling"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    DEAD = "dead"
    MISSING = "missing"   # the agent has no container for it
    UNKNOWN = "unknown"   # the node is not ready: its last report may be stale


LIVE = frozenset({ContainerState.RUNNING, ContainerState.PAUSED})
TRANSITIONAL = frozenset({ContainerState.CREATED, ContainerState.RESTARTING})


class LaunchFailure(StrEnum):
    """Why an agent's launch (create/recreate) failed (``status.containerReason``)."""

    IMAGE_PULL_FAILED = "ImagePullFailed"
    CREATE_CONTAINER_ERROR = "CreateContainerError"


class DesiredState(StrEnum):
    """``spec.desiredState``: what the user wants of the container."""

    RUNNING = "Running"
    STOPPED = "Stopped"
