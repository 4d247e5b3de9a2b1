"""Fixtures shared by every test area: a real etcd per session, a clean keyspace per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from persys.resources import REGISTRY
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer


def _children() -> set[int]:
    """Live child processes of this test process (zombies already reaped are not listed)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (task / "children").read_text().split()}
    return pids


@pytest.fixture(autouse=True)
async def no_leftovers() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running or child processes alive."""
    before = _children()
    yield
    for _ in range(40):  # let cancelled tasks, closing transports and stopping children finish
        tasks = {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}
        processes = _children() - before
        if not tasks and not processes:
            return
        await asyncio.sleep(0.05)
    assert not tasks, f"tasks left behind: {sorted(t.get_name() for t in tasks)}"
    assert not processes, f"child processes left behind: {sorted(processes)}"


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    asyncio.run(server.start())
    yield server
    server.stop()


@pytest.fixture
async def etcd(etcd_server: EtcdServer) -> AsyncIterator[Etcd]:
    client = Etcd(etcd_server.url)
    await client.delete_prefix("/persys/")
    await client.delete_prefix("/skydns/")
    yield client
    await client.close()


@pytest.fixture
async def store(etcd: Etcd) -> ObjectStore:
    return ObjectStore(etcd, REGISTRY)


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd of this test's own, for tests that stop and restart it."""
    server = EtcdServer(tmp_path / "etcd")
    yield server
    server.stop()
