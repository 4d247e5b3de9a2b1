"""The knobs of Persys's controllers, with the defaults DESIGN.md gives (tests shorten them)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class ControllersConfig:
    """Every timing and size the scheduler, reconciler and monitor use; seconds unless named."""

    lease_ttl: int = 3                   # leader lease; a standby takes over within this (bench/failover.py)
    grace_seconds: float = 30.0          # after an action, wait this long for the agent to report
    launch_check_seconds: float = 5.0    # meanwhile, ask this often whether the agent still knows the launch
    full_pass_seconds: float = 120.0     # reconciler: re-check every workload this often
    backoff_initial: float = 10.0        # restart back-off: first delay …
    backoff_max: float = 300.0           # … doubling up to this
    backoff_reset: float = 600.0         # a container that ran this long starts a fresh back-off
    heartbeat_timeout: float = 40.0      # a node whose heartbeat is older is NotReady
    node_lost_timeout: float = 300.0     # NotReady this long: its workloads are rescheduled
    poll_seconds: float = 30.0           # monitor: GET /v1/workloads of each node this often
    agent_timeout: float = 10.0          # every agent HTTP call
    stream_backoff_max: float = 30.0     # monitor: reconnect back-off cap for event streams
    schedule_retry_seconds: float = 60.0  # scheduler: retry an unschedulable workload at least this often
    node_check_seconds: float = 5.0      # monitor: re-check node heartbeats this often
    stats_seconds: float = 10.0          # reconciler: persist statistics this often
    log_tail: int = 20                   # log lines put into an Event when a container stops
    workers: int = 16                    # reconcile workers of the reconciler (the monitor takes at most 4)
    watch_stall_seconds: float = 300.0   # informer watchdog: relist after this much silence
    git_poll_seconds: float = 180.0      # git poller: ask followed branches for their tip this often (0: never)
    certificate_seconds: float = 30 * 86400.0  # csr-signer: lifetime of what it signs (renewed at 2/3)
    hmac_refresh_seconds: float = 10.0   # re-read the agents' HMAC keyring from etcd this often (rotation)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ControllersConfig:
        """Build from a mapping (e.g. a config file section); unknown names raise ValueError."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown controller settings: {', '.join(sorted(unknown))}")
        return cls(**values)
