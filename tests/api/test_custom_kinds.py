"""Custom kinds through the real API: a ResourceDefinition for ``Backup`` makes it served at once, on every
API server of the etcd, with the verbs of the built-in kinds; bad or clashing definitions store nothing;
deleting the definition deletes its objects and stops serving it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persys.client import ApiClient
from persys.errors import Conflict, Gone, Invalid, NotFound
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.backup import BACKUPS, NAME, RD_PATH, backup, definition
from tests.support.cluster import ApiThread, RunningApi, raw_request
from tests.support.eventually import eventually


@pytest.fixture
def second_api(api: RunningApi, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Iterator[RunningApi]:
    """Another API server over the same etcd, started before any definition exists."""
    thread = ApiThread(etcd_server.url, pki_home.home).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home2")
    finally:
        thread.stop()


async def define(client: ApiClient, **changes: Any) -> None:
    _, _, headers = await client.request("PUT", RD_PATH, body=definition(**changes))
    assert headers["X-Persys-Apply"] == "created"


async def causes_of(call: Any) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        await call
    return {c.field: c.message for c in caught.value.causes}


async def test_objects_are_validated_with_field_paths_and_defaulted(api: RunningApi, etcd: Etcd) -> None:
    async with api.client() as client:
        await define(client)
        status, created, _ = await client.request("POST", BACKUPS, body=backup("nightly", target=None))
        assert status == 201 and created["apiVersion"] == "backup.example.com/v1"
        assert created["spec"] == {"source": "web", "target": None, "schedule": "@daily", "retention": {"days": 7}}
        assert await etcd.get("/persys/registry/backup.example.com/backups/default/nightly") is not None
        bad = backup("bad", retention={"days": -1}, schedule="often", target="tape", extra=1, tags=["x" * 30])
        causes = await causes_of(client.request("POST", BACKUPS, body=bad))
        assert causes == {
            "spec.retention.days": "-1 is less than the minimum of 0",
            "spec.schedule": "'often' does not match '^@(hourly|daily|weekly)$'",
            "spec.target": "'tape' is not one of ['local', 's3', None]",
            "spec.extra": "unknown field",
            "spec.tags[0]": f"'{'x' * 30}' is too long",
        }
        no_source = backup("bad")
        del no_source["spec"]["source"]
        assert await causes_of(client.request("POST", BACKUPS, body=no_source)) == {"spec.source": "required"}
        infinite = backup("bad", options={"ratio": float("inf")})
        assert "spec.options.ratio" in await causes_of(client.apply_raw(infinite))
        preserved, _ = await client.apply_raw(backup("free", options={"any": {"thing": [1, "two"]}}))
        assert preserved.spec["options"] == {"any": {"thing": [1, "two"]}}
        with pytest.raises(NotFound):
            await client.get("Backup", "bad")


async def test_apply_patch_dry_run_selectors_status_and_finalizers(api: RunningApi) -> None:
    async with api.client() as client:
        await define(client)
        obj, outcome = await client.apply_raw(backup("a", labels={"tier": "gold"}))
        assert (outcome, obj.spec["retention"]) == ("created", {"days": 7})
        assert (await client.apply_raw(backup("a", labels={"tier": "gold"})))[1] == "unchanged"
        changed, outcome = await client.apply_raw(backup("a", labels={"tier": "gold"}, retention={"days": 30}))
        assert (outcome, changed.metadata.generation) == ("configured", 2)
        await client.apply_raw(backup("b", labels={"tier": "bronze"}))
        dry, _ = await client.apply_raw(backup("c"), dry_run=True)
        assert dry.metadata.uid and [o.metadata.name for o in (await client.list("bk"))[0]] == ["a", "b"]
        gold, _ = await client.list("backups", selector="tier=gold")
        assert [o.metadata.name for o in gold] == ["a"]
        everywhere, _ = await client.list("backup.backup.example.com", None)
        assert len(everywhere) == 2
        patched = await client.patch("Backup", "a", {"spec": {"retention": {"days": 1}, "target": "s3"}})
        assert patched.spec["retention"] == {"days": 1} and patched.spec["target"] == "s3"
        with pytest.raises(Invalid):
            await client.patch("Backup", "a", {"spec": {"retention": {"days": "soon"}}})
        done = await client.update_status("Backup", "a", {"phase": "Ready", "lastRun": None})
        assert done.status == {"phase": "Ready", "lastRun": None} and done.metadata.generation == 3
        assert "status.phase" in await causes_of(client.update_status("Backup", "a", {"phase": "Lost"}))
        again, _ = await client.apply_raw({**backup("a", labels={"tier": "gold"}), "status": {"phase": "Failed"}})
        assert again.status["phase"] == "Ready"  # status is written through /status only
        held, _ = await client.apply_raw({**backup("held"), "metadata": {"name": "held", "finalizers": ["x/y"]}})
        deleting = await client.delete("Backup", "held")
        assert deleting is not None and deleting.metadata.deletionTimestamp
        await client.patch("Backup", "held", {"metadata": {"finalizers": None}})
        with pytest.raises(NotFound):
            await client.get("Backup", "held")


async def test_watch_streams_bookmarks_and_gone(api: RunningApi, etcd: Etcd) -> None:
    async with api.client() as client:
        await define(client)
        _, revision = await client.list("Backup")
        seen: list[tuple[str, str]] = []

        async def follow() -> None:
            async for item in client.watch("Backup", resource_version=revision):
                seen.append((item.type, item.object.metadata.name if item.object else ""))
                if item.type == "BOOKMARK":
                    return

        watcher = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        await client.apply_raw(backup("w"))
        await client.patch("Backup", "w", {"metadata": {"labels": {"x": "y"}}})
        await client.delete("Backup", "w")
        await asyncio.wait_for(watcher, 10)
        assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w"), ("BOOKMARK", "")]
        await etcd.compact(await etcd.revision())
        with pytest.raises(Gone):  # older than the watch cache holds, and compacted in etcd
            async for _ in client.watch("Backup", resource_version=str(int(revision) - 1)):
                pass


async def test_a_second_server_serves_the_definition_without_restart(api: RunningApi,
                                                                       second_api: RunningApi) -> None:
    async with api.client() as first, second_api.client() as second:
        with pytest.raises(NotFound):
            await second.request("GET", BACKUPS)
        await define(first)
        await first.apply_raw(backup("shared"))  # served at once by the server that stored the definition

        async def listed() -> list[str]:
            try:
                _, data, _ = await second.request("GET", BACKUPS)
            except NotFound:
                return []
            return [item["metadata"]["name"] for item in data["items"]]

        assert await eventually(listed, what="the second server to serve backups") == ["shared"]
        await second.apply_raw(backup("from-second"))
        await first.request("DELETE", RD_PATH)

        async def unserved() -> bool:
            try:
                await second.request("GET", BACKUPS)
            except NotFound:
                return True
            return False

        await eventually(unserved, what="the second server to stop serving backups")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"group": "backup"}, "spec.group", "at least one dot"),
    ({"group": "persys.dev"}, "spec.group", "reserved"),
    ({"group": "Backup.Example.com"}, "spec.group", "DNS-1123 subdomain"),
    ({"names": {"kind": "backup", "plural": "backups"}}, "spec.names.kind", "UpperCamelCase"),
    ({"scope": "Global"}, "spec.scope", "must be one of"),
    ({"versions": []}, "spec.versions", "at least one version"),
])
async def test_a_bad_definition_stores_nothing(api: RunningApi, changes: dict[str, Any], field: str,
                                               message: str) -> None:
    async with api.client() as client:
        with pytest.raises(Invalid) as caught:
            await client.request("PUT", RD_PATH, body=definition(**changes))
        assert message in {c.field: c.message for c in caught.value.causes}[field]
        assert (await client.list("rd"))[0] == []


async def test_schema_keywords_and_storage_versions_are_checked(api: RunningApi) -> None:
    good = definition()["spec"]["versions"][0]
    unknown = json.loads(json.dumps(good).replace('"minLength": 1', '"minLength": 1, "oneOf": []'))
    two = [good, {**good, "name": "v2"}]
    async with api.client() as client:
        causes = await causes_of(client.request("PUT", RD_PATH, body=definition(versions=[unknown])))
        assert causes == {"spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.source.oneOf":
                          "unknown keyword"}
        causes = await causes_of(client.request("PUT", RD_PATH, body=definition(versions=two)))
        assert causes == {"spec.versions": "exactly one version must have storage: true, not 2"}
        body = definition()
        body["metadata"]["name"] = "backups.other.example.com"
        causes = await causes_of(client.request("PUT", RD_PATH.replace(NAME, "backups.other.example.com"), body=body))
        assert causes == {"metadata.name": "must be backups.backup.example.com (<plural>.<group>)"}
        assert (await client.list("rd"))[0] == []


@pytest.mark.parametrize(("names", "field", "taken"), [
    ({"kind": "Workload", "plural": "workloadz"}, "spec.names.kind", "Workload"),
    ({"kind": "Job", "plural": "nodes"}, "spec.names.plural", "Node"),
    ({"kind": "Job", "plural": "jobs", "shortNames": ["wl"]}, "spec.names.shortNames", "Workload"),
    ({"kind": "Backup", "plural": "snapshots"}, "spec.names.kind", "Backup"),
    ({"kind": "Snapshot", "plural": "snapshots", "shortNames": ["bk"]}, "spec.names.shortNames", "Backup"),
])
async def test_names_clashing_with_built_in_or_defined_kinds_are_refused(api: RunningApi, names: dict[str, Any],
                                                                          field: str, taken: str) -> None:
    async with api.client() as client:
        await define(client)
        other = definition(group="other.example.com", names=names)
        name = f"{names['plural']}.other.example.com"
        other["metadata"]["name"] = name
        causes = await causes_of(client.request("PUT", f"/apis/persys.dev/v1/resourcedefinitions/{name}", body=other))
        assert f"is taken by kind {taken}" in causes[field]
        assert [d.metadata.name for d in (await client.list("rd"))[0]] == [NAME]


async def test_scope_and_kind_of_a_definition_cannot_change(api: RunningApi) -> None:
    async with api.client() as client:
        await define(client)
        causes = await causes_of(client.request("PUT", RD_PATH, body=definition(scope="Cluster")))
        assert "cannot change" in causes["spec.scope"]
        stored = await client.get("rd", NAME)
        assert stored.metadata.finalizers == ["persys.dev/definition-cleanup"]


async def test_deleting_the_definition_deletes_objects_and_unserves(api: RunningApi) -> None:
    async with api.client() as client:
        await define(client)
        await client.apply_raw(backup("one"))
        await client.apply_raw(backup("two", namespace="team"))
        await client.apply_raw({**backup("held"), "metadata": {"name": "held", "finalizers": ["example.com/keep"]}})
        deleting = await client.delete("rd", NAME)
        assert deleting is not None and deleting.metadata.deletionTimestamp

        async def only_held() -> bool:
            items, _ = await client.list("Backup", None)
            return [o.metadata.name for o in items] == ["held"]

        await eventually(only_held, what="the objects without finalizers to be deleted")
        with pytest.raises(Conflict, match="being deleted"):
            await client.apply_raw(backup("late"))
        await client.patch("Backup", "held", {"metadata": {"finalizers": None}})

        async def gone() -> bool:
            try:
                await client.request("GET", BACKUPS)
            except NotFound as e:
                return "served kinds" in e.message
            return False

        await eventually(gone, what="backups to stop being served")
        assert (await client.list("rd"))[0] == []


async def test_unknown_group_or_version_is_404_listing_served_kinds(api: RunningApi) -> None:
    async with api.client() as client:
        await define(client)
        for path in ("/apis/nope.example.com/v1/namespaces/default/things",
                     "/apis/backup.example.com/v9/namespaces/default/backups", "/apis/nope.example.com/v1"):
            with pytest.raises(NotFound) as caught:
                await client.request("GET", path)
            assert "backup.example.com/v1: backups" in caught.value.message
            assert re.search(r"persys\.dev/v1: [a-z, ]*\bevents\b", caught.value.message)
        with pytest.raises(NotFound, match="served there: backups"):
            await client.request("GET", "/apis/backup.example.com/v1/namespaces/default/things")
        with pytest.raises(NotFound):  # a custom kind is not served under the built-in group
            await client.request("GET", "/apis/persys.dev/v1/namespaces/default/backups")


async def test_discovery_and_openapi_show_the_kind(api: RunningApi) -> None:
    async with api.client() as client:
        await define(client)
        _, data, _ = await client.request("GET", "/apis")
        assert {"name": "backup.example.com", "versions": ["v1"]} in data["groups"]
        entry = next(k for k in data["kinds"] if k["kind"] == "Backup")
        assert entry["shortNames"] == ["bk"] and entry["namespaced"] and entry["subresources"] == ["status"]
        assert [c["jsonPath"] for c in entry["printerColumns"]] == [".spec.source", ".spec.retention.days",
                                                                    ".status.phase"]
        spec = entry["schema"]["properties"]["spec"]
        assert spec["properties"]["retention"]["description"] == "How long backups are kept."
        _, group, _ = await client.request("GET", "/apis/backup.example.com/v1")
        assert [k["kind"] for k in group["kinds"]] == ["Backup"]
    status, body, _ = await raw_request(api, "GET", "/openapi.json", plain=True)
    paths = json.loads(body)["paths"]
    assert set(paths[f"{BACKUPS.replace('default', '{namespace}')}/{{name}}"]) == {"get", "put", "patch", "delete"}
    assert "put" in paths["/apis/backup.example.com/v1/namespaces/{namespace}/backups/{name}/status"]
    assert "/apis/backup.example.com/v1/backups" in paths  # all namespaces
    assert "/apis/persys.dev/v1/namespaces/{namespace}/backups" not in paths
