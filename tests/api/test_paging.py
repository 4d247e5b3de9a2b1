"""Paged lists (``?limit=N&continue=TOKEN``) on a real API server over a real etcd."""

from __future__ import annotations

import json
from typing import Any

import pytest

from persys.errors import Gone
from persys.resources import REGISTRY
from persys.store import Etcd, objects
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
    ("nameContains=" + "x" * 254, "nameContains"), ("nameContains=%0A", "nameContains"),
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


async def test_name_contains_scans_keys_only_and_reads_just_the_matches(api: RunningApi,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects, "NAME_SCAN", 4)  # several key scans per page
    names = [f"{'web' if i % 5 == 0 else 'db'}-{i:02d}" for i in range(23)]
    async with api.client() as admin:
        for name in names:
            await admin.create(workload(name))
        wanted = [n for n in names if "web" in n]
        status, whole = await page(api, "nameContains=WEB")  # any case
        assert status == 200 and [o["metadata"]["name"] for o in whole["items"]] == wanted
        assert "continue" not in whole["metadata"] and whole["items"][0]["spec"]["image"]
        seen: list[str] = []
        status, first = await page(api, "nameContains=web&limit=2")
        token = first["metadata"]["continue"]
        seen += [o["metadata"]["name"] for o in first["items"]]
        await admin.create(workload("web-99"))  # after the first page: not in this list
        while token:
            status, following = await page(api, f"nameContains=web&limit=2&continue={token}")
            assert status == 200 and following["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
            seen += [o["metadata"]["name"] for o in following["items"]]
            token = following["metadata"].get("continue", "")
        assert seen == wanted
        status, more = await page(api, "nameContains=web&limit=5")  # six now
        assert len(more["items"]) == 5 and "continue" in more["metadata"]
        status, exact = await page(api, "nameContains=web&limit=6")  # exactly the matches: no empty page follows
        assert len(exact["items"]) == 6 and "continue" not in exact["metadata"]
        status, none = await page(api, "nameContains=nothing-here&limit=2")
        assert status == 200 and none["items"] == [] and "continue" not in none["metadata"]
