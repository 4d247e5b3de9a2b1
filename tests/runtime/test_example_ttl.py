"""The example controller in examples/ works as documented (so the README's example never rots)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType

from persys.errors import NotFound
from persys.runtime import FakeClock, Manager
from persys.runtime.clock import to_iso
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer
from tests.support.eventually import eventually
from tests.support.workloads import workload

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ttl_after_finished.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ttl_after_finished", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_finished_workload_is_deleted_after_its_ttl(etcd_server: EtcdServer, store: ObjectStore) -> None:
    example = load_example()
    clock = FakeClock()
    manager = Manager(Etcd(etcd_server.url), clock=clock, lease_ttl=2, listen=None, owns_etcd=True)
    manager.add(example.TTLAfterFinished())
    task = asyncio.create_task(manager.run())
    try:
        done = workload("done")
        done.metadata.annotations[example.ANNOTATION] = "60"
        await store.create(done)
        await store.create(workload("running"))
        await store.update_status("Workload", "default", "done",
                                  {"phase": "Exited", "finishedAt": to_iso(clock.now() - 10)})
        await store.update_status("Workload", "default", "running", {"phase": "Running"})
        await eventually(lambda: manager.is_leader)
        await asyncio.sleep(0.3)
        await store.get("Workload", "default", "done")  # 10 s after finishing: still there
        clock.advance(49)
        await asyncio.sleep(0.3)
        await store.get("Workload", "default", "done")  # 59 s: still there
        clock.advance(2)

        async def gone() -> bool:
            try:
                await store.get("Workload", "default", "done")
            except NotFound:
                return True
            return False

        await eventually(gone, timeout=5, what="the finished workload deleted after its TTL")
        await store.get("Workload", "default", "running")  # never finished: kept
    finally:
        manager.stop()
        await asyncio.wait_for(task, 10)
