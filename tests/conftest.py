"""Fixtures shared by every test area: a real etcd per session, a clean keyspace per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from persys.resources import REGISTRY
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer


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
