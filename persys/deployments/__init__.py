"""Deployments: the built-in operator that rolls replicas of a Workload template (issue 14).

It is written on the public operator SDK (``persys.operator``) and talks to the API only; the
pure parts are ``rollout`` (what to create and delete), ``progress`` (the conditions) and
``history`` (the revisions). ``runner`` builds the process part that ``persys up`` and
``persys controllers`` run, under the controllers' certificate.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from persys.deployments.controller import NAME, DeploymentController
from persys.operator import Connection, OperatorRunner
from persys.runtime.clock import Clock
from persys.security.paths import HomePaths

IDENTITY = "controller"  # the certificate (role controllers) it presents: Deployments are built-in kinds


def runner(server: str, home: Path, *, listen: tuple[str, int] | None = None, lease_ttl: int = 15,
           clock: Clock | None = None) -> OperatorRunner:
    """The Deployment controller as an ``OperatorRunner`` against the API at ``server``."""
    paths = HomePaths(home)
    connection = Connection(server, ca=paths.ca_cert, cert=paths.cert(IDENTITY), key=paths.key(IDENTITY))
    return OperatorRunner(DeploymentController(clock).operator(), connection, listen=listen, lease_ttl=lease_ttl,
                          identity=f"{NAME}-{socket.gethostname()}-{os.getpid()}", clock=clock)


__all__ = ["NAME", "DeploymentController", "runner"]
