"""The spec hash: which part of a Workload's spec makes its container what it is.

Controllers and agents both compute it (label ``persys.dev/spec-hash``); a different hash
means the container must be replaced. Fields that do not shape the container (desired state,
placement, restart policy, DNS) are left out, so changing them never recreates anything.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

CONTAINER_FIELDS = ("type", "image", "command", "args", "env", "workingDir", "ports", "network",
                    "resources", "compose")


def spec_hash(spec: dict[str, Any]) -> str:
    """16 hex characters of sha256 over the container-shaping fields, canonical JSON."""
    shaping = {key: spec[key] for key in CONTAINER_FIELDS if spec.get(key) not in (None, "", [], {})}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:16]
