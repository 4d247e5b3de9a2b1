"""The hot paths' JSON codec: orjson, with the standard library for what orjson refuses but a stored value
may hold; and a store whose object holds such a value still lists it (real etcd)."""

from __future__ import annotations

import json

from persys import jsoncodec
from persys.resources import REGISTRY
from persys.store import Etcd, ObjectStore

BIG = 2**70  # beyond orjson's 64 bits; the standard library wrote it


def test_round_trip_and_the_big_integer_fallback() -> None:
    data = {"a": [1, 2.5, "x", None, True], "b": {"c": "é"}}
    assert jsoncodec.loads(jsoncodec.dumps(data)) == data
    assert jsoncodec.loads(f'{{"n": {BIG}}}') == {"n": BIG}
    assert jsoncodec.loads(f'{{"n": {BIG}}}'.encode()) == {"n": BIG}


async def test_a_stored_big_integer_still_lists(store: ObjectStore, etcd: Etcd) -> None:
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": "big", "namespace": "codec"},
                          "spec": {"image": "persys/busybox:local", "env": {"N": "1"}}})
    created = await store.create(obj)
    key = "/persys/registry/workloads/codec/big"
    stored = jsoncodec.loads((await etcd.get(key)).value)  # type: ignore[union-attr]
    stored["metadata"]["annotations"] = {"x": "y"}
    stored["status"] = {"restarts": BIG}
    await etcd.put(key, json.dumps(stored).encode())
    items, _, _ = await store.list_wire("Workload", "codec")
    assert items[0]["status"]["restarts"] == BIG and created.metadata.uid == items[0]["metadata"]["uid"]
