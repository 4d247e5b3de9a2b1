"""Paged lists (``?limit=N&continue=TOKEN``) on a real API server over a real etcd."""

from __future__ import annotations

import json
from typing import Any

import pytest

from persys.errors import Gone
from persys.resources import REGISTRY
from persys.store import Etcd
from tests.support.cluster import RunningApi, raw_request
from tests.support.workloads import workload

LIST = "/apis/persys.dev/v1/namespaces/default/workloads"


async def page(api: RunningApi, query: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = await raw_request(api, "GET", f"{LIST}?{query}")
    return status, json.loads(body)


async def test_pages_come_from_one_snapshot_until_the_last(api: RunningApi) -> None:
    async with api.client() as admin:
        for i in range(7):
            await admin.create(workload(f"w{i}"))
        status, first = await page(api, "limit=3")
        assert status == 200 and [o["metadata"]["name"] for o in first["items"]] == ["w0", "w1", "w2"]
        token, revision = first["metadata"]["continue"], first["metadata"]["resourceVersion"]
        await admin.create(workload("w3a"))  # written after the first page: not in this list
        await admin.delete("Workload", "w5")  # deleted after it: still in this list
        names: list[str] = []
        while token:
            status, next_page = await page(api, f"limit=3&continue={token}")
            assert status == 200 and next_page["metadata"]["resourceVersion"] == revision
            names += [o["metadata"]["name"] for o in next_page["items"]]
            token = next_page["metadata"].get("continue", "")
        assert names == ["w3", "w4", "w5", "w6"]
        status, whole = await page(api, "")
        assert "continue" not in whole["metadata"] and len(whole["items"]) == 7
        listed, _ = await admin.list("Workload", "default", page=2)  # the client reads page after page
        assert [o.metadata.name for o in listed] == ["w0", "w1", "w2", "w3", "w3a", "w4", "w6"]


@pytest.mark.parametrize(("query", "words"), [
    ("limit=0", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"), ("limit=10001", "limit"),
    ("limit=2&continue=garbage!", "continue"),
    # a token of another collection (nodes) is not this one's
    ("limit=2&continue=eyJydiI6MTAsInN0YXJ0IjoiL3BlcnN5cy9yZWdpc3RyeS9ub2Rlcy94XHUwMDAwIn0", "continue"),
])
async def test_bad_paging_parameters_are_400_naming_them(api: RunningApi, query: str, words: str) -> None:
    status, body = await page(api, query)
    assert status == 400 and body["message"].startswith(words), body


async def test_a_token_whose_snapshot_is_compacted_is_gone(api: RunningApi, etcd: Etcd) -> None:
    async with api.client() as admin:
        for i in range(3):
            await admin.create(REGISTRY.parse({"kind": "Workload", "metadata": {"name": f"c{i}"},
                                               "spec": {"image": "persys/busybox:local"}}))
        _, first = await page(api, "limit=1")
        await admin.create(workload("later"))
        await etcd.compact(await etcd.revision())
        status, body = await page(api, f"limit=1&continue={first['metadata']['continue']}")
        assert status == 410 and "list again without continue" in body["message"], body
        with pytest.raises(Gone):
            await admin.request("GET", LIST, params={"limit": "1", "continue": first["metadata"]["continue"]})
