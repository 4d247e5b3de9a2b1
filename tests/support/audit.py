"""An API server with an audit trail, for the audit tests: its policy from YAML, its files in a temp dir."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from persys.api.audit.auditor import AuditSettings
from persys.api.audit.loki import LokiSettings
from persys.api.audit.policy import parse_policy
from persys.api.server import default_routes
from persys.security.paths import HomePaths
from persys.store.server import EtcdServer
from tests.support.cluster import ApiThread, RunningApi

EVERYTHING = """
rules:
- level: RequestResponse
"""


@contextlib.contextmanager
def audited_api(etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path, policy: str = EVERYTHING, *,
                loki: LokiSettings | None = None, **settings: Any) -> Iterator[RunningApi]:
    """An API server recording its trail under ``tmp_path/audit`` by ``policy`` (YAML)."""
    audit = AuditSettings(tmp_path / "audit", parse_policy(yaml.safe_load(policy)), loki=loki, **settings)
    thread = ApiThread(etcd_server.url, pki_home.home, audit=audit, extra_routes=default_routes()).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home")
    finally:
        thread.stop()


def trail(directory: Path) -> list[dict[str, Any]]:
    """Every event in ``directory``'s audit files, oldest first."""
    files = sorted(directory.glob("audit.log.*"), key=lambda p: -int(p.suffix[1:])) + [directory / "audit.log"]
    return [json.loads(line) for path in files if path.exists() for line in path.read_text().splitlines()]


async def events_for(directory: Path, count: int = 1, **where: Any) -> list[dict[str, Any]]:
    """The events whose top-level fields equal ``where``, once at least ``count`` are written (5 s at most)."""
    found: list[dict[str, Any]] = []
    for _ in range(100):
        found = [e for e in trail(directory) if all(e.get(k) == v for k, v in where.items())]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} events with {where}, found {len(found)}: {found}")
