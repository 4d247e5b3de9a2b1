"""Audit events pushed to a stand-in Loki on 127.0.0.1 that checks the wire format of ``/loki/api/v1/push``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from persys.api.audit.drops import DROPPED, RECORDED
from persys.api.audit.loki import LokiSettings
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.audit import audited_api, events_for
from tests.support.workloads import manifest


class FakeLoki:
    """Answers pushes with the scripted codes (then 204), after checking each is Loki's JSON push body."""

    def __init__(self, codes: list[int], *, hang: bool = False) -> None:
        self.codes, self.hang = list(codes), hang
        self.bodies: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()

    async def push(self, request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            self.problems.append(f"content type {request.content_type}")
        body = json.loads(await request.read())
        self.problems += wire_problems(body)
        self.bodies.append(body)
        if self.hang:
            await self._release.wait()
        code = self.codes.pop(0) if self.codes else 204
        return web.Response(status=code, text="" if code == 204 else f"scripted {code}")

    async def __aenter__(self) -> FakeLoki:
        app = web.Application()
        app.router.add_post("/loki/api/v1/push", self.push)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._runner is not None
        await self._runner.cleanup()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for body in self.bodies for stream in body["streams"] for _, line in stream["values"]]


def wire_problems(body: Any) -> list[str]:
    """What is wrong with a push body: {"streams": [{"stream": {labels}, "values": [["<ns>", "<line>"]]}]}."""
    if not isinstance(body, dict) or not isinstance(body.get("streams"), list):
        return ["no streams list"]
    problems = []
    for stream in body["streams"]:
        labels = stream.get("stream")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            problems.append(f"labels {labels!r}")
        for value in stream.get("values", []):
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
                    and value[0].isdigit() and len(value[0]) >= 19):
                problems.append(f"value {value!r}")
    return problems


def counted(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())


async def until(check: Any, what: str) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def fast(url: str, **overrides: Any) -> LokiSettings:
    settings: dict[str, Any] = {"batch_wait": 0.05, "backoff_initial": 0.01, "backoff_max": 0.05, "timeout": 30.0}
    return LokiSettings(url, **(settings | overrides))


async def test_pushes_are_lokis_json_and_429_500_are_retried(etcd: Etcd, etcd_server: EtcdServer,
                                                             pki_home: HomePaths, tmp_path: Path) -> None:
    sent_before = counted(RECORDED, "loki")
    async with FakeLoki([429, 500]) as loki:
        with audited_api(etcd_server, pki_home, tmp_path, loki=fast(loki.url)) as api:
            async with api.client() as client:
                await client.apply_raw(manifest("web"))
                await client.get("workload", "web")
            await until(lambda: len(loki.bodies) >= 3 and counted(RECORDED, "loki") - sent_before >= 2,
                        "three pushes, the third accepted")
            (written,) = await events_for(tmp_path / "audit", 1, verb="update")
    assert loki.problems == []
    assert loki.bodies[0] == loki.bodies[1] == loki.bodies[2]  # the same batch, retried
    streams = {tuple(sorted(s["stream"].items())): s for body in loki.bodies[2:] for s in body["streams"]}
    assert set(streams) <= {(("class", "write"), ("job", "persys-audit")), (("class", "read"), ("job", "persys-audit"))}
    pushed = {e["auditID"]: e for e in loki.events()}
    assert pushed[written["auditID"]] == written  # the same line as in the file
    assert {e["verb"] for e in pushed.values()} == {"update", "get"}


async def test_a_400_is_not_retried_and_counted_as_dropped(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths,
                                                           tmp_path: Path) -> None:
    rejected_before = counted(DROPPED, "loki", "rejected")
    async with FakeLoki([400]) as loki:
        with audited_api(etcd_server, pki_home, tmp_path, loki=fast(loki.url)) as api:
            async with api.client() as client:
                await client.apply_raw(manifest("first"))
                await until(lambda: counted(DROPPED, "loki", "rejected") > rejected_before, "the batch dropped")
                await client.apply_raw(manifest("second"))
                await until(lambda: len(loki.bodies) >= 2, "a second push")
    names = [[e["objectRef"]["name"] for e in [json.loads(line) for s in body["streams"] for _, line in s["values"]]]
             for body in loki.bodies]
    assert names[0] == ["first"] and names[1] == ["second"]  # the refused batch was never sent again
    assert counted(DROPPED, "loki", "rejected") - rejected_before == 1


@pytest.mark.parametrize("trouble", ["slow", "unreachable"])
async def test_a_slow_or_unreachable_loki_never_holds_up_requests(etcd: Etcd, etcd_server: EtcdServer,
                                                                  pki_home: HomePaths, tmp_path: Path,
                                                                  trouble: str) -> None:
    full_before = counted(DROPPED, "loki", "queue_full")
    drops_before = full_before + counted(DROPPED, "loki", "retries_exhausted")
    async with FakeLoki([], hang=True) as loki:
        url = loki.url if trouble == "slow" else "http://127.0.0.1:9"
        settings = fast(url, queue_size=5, batch_size=1, max_retries=1, backoff_initial=0.5, backoff_max=1.0)
        with audited_api(etcd_server, pki_home, tmp_path, loki=settings) as api:
            async with api.client() as client:
                for i in range(20):
                    await client.apply_raw(manifest(f"w{i}"))
            assert len(await events_for(tmp_path / "audit", 20, verb="update")) == 20  # the file has them all
            if trouble == "slow":
                await until(lambda: len(loki.bodies) == 1, "one push, hanging")
                assert counted(DROPPED, "loki", "queue_full") - full_before >= 20 - 5 - 1
            else:
                await until(lambda: sum(counted(DROPPED, "loki", r) for r in ("queue_full", "retries_exhausted"))
                            > drops_before, "drops counted")
