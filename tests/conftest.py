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


def _where(task: asyncio.Task[object]) -> str:
    """The task's await chain, innermost last (where it is stuck)."""
    chain, coro = [], task.get_coro()
    while coro is not None and len(chain) < 30:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return f"  {task.get_name()}: {' -> '.join(chain)}"


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
    assert not tasks, "tasks left behind:\n" + "\n".join(_where(t) for t in tasks)
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
