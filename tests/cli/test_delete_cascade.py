"""``persys delete --cascade``: what the owner's deletion asks for, and with the collector running, what it does."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from persys.controllers.gc import GarbageCollector
from persys.resources.model import FOREGROUND_DELETION, ORPHAN_FINALIZER
from persys.runtime import Manager
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.cluster import RunningApi, cli
from tests.support.workloads import manifest


def apply(api: RunningApi, tmp_path: Path, document: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / f"{document['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(document))
    code, out, err = cli(api.home, "apply", "-f", str(path))
    assert code == 0, out + err
    return get(api, document["metadata"]["name"]) or {}


def get(api: RunningApi, name: str) -> dict[str, Any] | None:
    code, out, _ = cli(api.home, "get", "workload", name, "-o", "json")
    return json.loads(out) if code == 0 else None


def owned(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    document = manifest(name)
    document["metadata"]["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                                "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                                "blockOwnerDeletion": True}]
    return document


def until(probe: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``probe`` (the CLI runs its own event loop, so these tests are synchronous)."""
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def collector(etcd_server: EtcdServer) -> Iterator[None]:
    """The garbage collector in a thread with its own event loop, beside the API's."""
    loop = asyncio.new_event_loop()
    manager = Manager(Etcd(etcd_server.url), component="gc", lease_ttl=2, listen=None, owns_etcd=True)
    manager.add(GarbageCollector())
    thread = threading.Thread(target=loop.run_until_complete, args=(manager.run(),), name="gc", daemon=True)
    thread.start()
    until(lambda: manager.is_leader, "the collector leading")
    yield
    loop.call_soon_threadsafe(manager.stop)
    thread.join(20)
    loop.close()


def test_cascade_policies_mark_the_owner(api: RunningApi, tmp_path: Path) -> None:
    for name in ("fg", "orphan", "bg"):
        apply(api, tmp_path, manifest(name))
    assert cli(api.home, "delete", "workload", "fg", "--cascade=foreground")[1].strip() == "workload/fg deleted"
    marked = get(api, "fg")
    assert marked is not None and marked["metadata"]["finalizers"] == [FOREGROUND_DELETION]
    assert marked["metadata"]["deletionTimestamp"]
    assert cli(api.home, "delete", "workload", "orphan", "--cascade", "orphan")[0] == 0
    marked = get(api, "orphan")
    assert marked is not None and marked["metadata"]["finalizers"] == [ORPHAN_FINALIZER]
    assert cli(api.home, "delete", "workload", "bg")[0] == 0  # background by default: gone at once
    assert get(api, "bg") is None


def test_unknown_cascade_is_a_usage_error(api: RunningApi, tmp_path: Path) -> None:
    apply(api, tmp_path, manifest("web"))
    code, _, err = cli(api.home, "delete", "workload", "web", "--cascade=true")
    assert code == 2 and "background" in err and "orphan" in err
    assert get(api, "web") is not None


def test_cascades_with_the_collector(api: RunningApi, tmp_path: Path, collector: None) -> None:
    owner = apply(api, tmp_path, manifest("owner"))
    apply(api, tmp_path, owned("kid", owner))
    assert cli(api.home, "delete", "workload", "owner")[0] == 0
    until(lambda: get(api, "kid") is None, "the dependent collected")

    owner = apply(api, tmp_path, manifest("owner"))
    apply(api, tmp_path, owned("kept", owner))
    assert cli(api.home, "delete", "workload", "owner", "--cascade=orphan")[0] == 0
    until(lambda: get(api, "owner") is None, "the owner gone")
    kept = get(api, "kept")
    assert kept is not None and "ownerReferences" not in kept["metadata"]

    owner = apply(api, tmp_path, manifest("owner"))
    apply(api, tmp_path, owned("kid", owner))
    path = tmp_path / "owner.yaml"
    assert cli(api.home, "delete", "-f", str(path), "--cascade=foreground")[0] == 0
    until(lambda: get(api, "owner") is None and get(api, "kid") is None, "the foreground cascade")
