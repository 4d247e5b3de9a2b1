"""``persys audit`` and ``GET /audit/events`` against a real API server's trail: filters, output, bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.audit import audited_api
from tests.support.cluster import RunningApi, cli, raw_request
from tests.support.workloads import manifest

POLICY = "rules:\n- {level: None, nonResourceURLs: ['/audit/*']}\n- {level: Metadata}\n"


@pytest.fixture
def audited(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Iterator[RunningApi]:
    with audited_api(etcd_server, pki_home, tmp_path / "server", POLICY) as api:
        asyncio.run(_traffic(api))
        yield api


async def _traffic(api: RunningApi) -> None:
    async with api.client() as admin:
        await admin.apply_raw(manifest("web"))
        await admin.apply_raw(manifest("db", namespace="data"))
        await admin.get("workload", "web")
        await admin.delete("workload", "web")
    async with api.client("controller") as controller:
        await controller.patch("workload", "db", {"metadata": {"labels": {"tier": "back"}}}, namespace="data")


def audit(api: RunningApi, *args: str) -> list[dict[str, Any]]:
    code, out, err = cli(api.home, "audit", "-o", "json", *args)
    assert code == 0, err
    events: list[dict[str, Any]] = json.loads(out)
    return events


def what(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["user"]["username"], e["verb"], e["objectRef"]["name"]) for e in events]


def test_the_whole_trail_oldest_first(audited: RunningApi) -> None:
    assert what(audit(audited)) == [("admin", "update", "web"), ("admin", "update", "db"), ("admin", "get", "web"),
                                    ("admin", "delete", "web"), ("controller", "patch", "db")]


@pytest.mark.parametrize(("args", "expected"), [
    (["--name", "web"], [("admin", "update", "web"), ("admin", "get", "web"), ("admin", "delete", "web")]),
    (["--user", "controller"], [("controller", "patch", "db")]),
    (["--verb", "delete"], [("admin", "delete", "web")]),
    (["-n", "data"], [("admin", "update", "db"), ("controller", "patch", "db")]),
    (["--name", "db", "--verb", "update"], [("admin", "update", "db")]),
    (["--since", "1h", "--limit", "2"], [("admin", "delete", "web"), ("controller", "patch", "db")]),
    (["--since", "2999-01-01T00:00:00Z"], []),
    (["--user", "nobody"], []),
])
def test_filters(audited: RunningApi, args: list[str], expected: list[tuple[str, str, str]]) -> None:
    assert what(audit(audited, *args)) == expected


def test_table_output(audited: RunningApi) -> None:
    code, out, _ = cli(audited.home, "audit", "--user", "controller")
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split() == ["TIME", "USER", "VERB", "OBJECT", "CODE", "LEVEL"]
    assert row.split()[1:] == ["controller", "patch", "data/workloads/db", "200", "Metadata"]


@pytest.mark.parametrize(("args", "named"), [
    (["--since", "banana"], "--since"),
    (["--limit", "0"], "--limit"),
])
def test_bad_flags_name_the_flag(audited: RunningApi, args: list[str], named: str) -> None:
    code, _, err = cli(audited.home, "audit", *args)
    assert code == 2 and named in err and "Traceback" not in err


@pytest.mark.parametrize(("query", "named"), [
    ("?since=banana", "since"),
    ("?limit=0", "limit"),
    ("?limit=%EF%BC%91", "limit"),
    ("?colour=red", "colour"),
])
def test_bad_query_parameters_are_400s_naming_them(audited: RunningApi, query: str, named: str) -> None:
    status, body, _ = asyncio.run(raw_request(audited, "GET", "/audit/events" + query))
    assert status == 400 and named in json.loads(body)["message"]


def test_only_admins_read_the_trail(audited: RunningApi) -> None:
    status, body, _ = asyncio.run(raw_request(audited, "GET", "/audit/events", identity="controller"))
    assert status == 403
