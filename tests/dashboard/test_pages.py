"""The dashboard's pages, streams and actions over HTTP, as a logged-in browser sees them (no browser here):
a real API server and etcd, the gateway in the test's loop, GitHub's web flow against the stand-in."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from persys.gateway.server import Gateway
from tests.dashboard.helpers import bind, web_login
from tests.support.backup import BACKUPS, RD_PATH, backup, definition
from tests.support.cluster import RunningApi
from tests.support.github import FakeGitHub, user

OCTOCAT, VIEWER = user("octocat"), user("viewer")


def workload(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Workload",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"image": "persys/busybox:local", "command": ["sleep", "60"], "desiredState": "Stopped"}}


def names(html: str) -> list[str]:
    return re.findall(r'<th scope="row" data-col="NAME"><a href="[^"]+">([^<]+)</a>', html)


async def test_a_page_needs_a_login_and_the_web_flow_comes_back_to_it(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as anonymous, \
            anonymous.get(gateway.url + "/ui/workloads?namespace=x", allow_redirects=False) as response:
        assert response.status == 302
        location = urlsplit(response.headers["Location"])
        assert (location.path, parse_qs(location.query)) == ("/auth/login", {"next": ["/ui/workloads?namespace=x"]})
    async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser, \
            browser.get(gateway.url + "/ui/") as page:
        assert page.status == 200 and "github:octocat" in await page.text()
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]


async def test_workloads_page_by_page_with_labels_and_search(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        for i in range(120):
            await admin.apply_raw(workload(f"w{i:03d}", "paged", tier="a" if i % 2 else "b"))
    async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser:
        async def page(query: str) -> tuple[int, str]:
            async with browser.get(gateway.url + "/ui/workloads?" + query) as response:
                return response.status, await response.text()

        status, first = await page("namespace=paged")
        assert status == 200 and names(first) == [f"w{i:03d}" for i in range(50)]
        following = re.search(r'href="([^"]+)" rel="next"', first)
        assert following is not None
        status, second = await page(following.group(1).split("?", 1)[1].replace("&amp;", "&"))
        assert names(second) == [f"w{i:03d}" for i in range(50, 100)]

        _, labelled = await page("namespace=paged&labelSelector=tier%3Da")
        assert names(labelled) == [f"w{i:03d}" for i in range(1, 100, 2)]
        _, searched = await page("namespace=paged&search=W11")  # case-insensitive part of a name
        assert names(searched) == [f"w{i:03d}" for i in range(110, 120)]
        assert 'rel="next"' not in searched

        status, bad = await page("namespace=paged&continue=not-a-token")
        assert status == 400 and "continue: not a page token" in bad
        status, bad = await page("namespace=Not_A_Namespace")
        assert status == 400 and "namespace:" in bad
        status, bad = await page("namespace=paged&labelSelector=%3D%3D%3D")
        assert status == 422 and "labelSelector" in bad, bad[bad.find("role=\"alert\""):][:300]


async def test_the_list_stream_sends_rows_of_the_page_as_they_change(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        await admin.apply_raw(workload("b-web", "live"))
        _, revision = await admin.list("Workload", "live")
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser:
            url = (f"{gateway.url}/ui/live/list/persys.dev/workloads?namespace=live&rv={revision}&first=1&last=1"
                   "&low=live/b-web&high=live/b-web")
            async with browser.get(url) as stream:
                assert stream.headers["Content-Type"] == "text/event-stream"
                await admin.apply_raw(workload("a-new", "live"))
                await admin.patch("Workload", "b-web", {"metadata": {"labels": {"x": "y"}}}, namespace="live")
                await admin.delete("Workload", "a-new", namespace="live")
                events = await read_events(stream, 3)
    assert [(name, data["key"]) for name, data in events] == [
        ("row", "live/a-new"), ("row", "live/b-web"), ("gone", "live/a-new")]
    assert 'data-key="live/b-web"' in events[1][1]["html"]


async def test_a_reconnecting_list_stream_resumes_after_the_last_event_it_had_sent(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        await admin.apply_raw(workload("b-web", "again"))
        _, revision = await admin.list("Workload", "again")
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser:
            url = f"{gateway.url}/ui/live/list/persys.dev/workloads?namespace=again&rv={revision}&first=1&last=1"
            async with browser.get(url) as stream:
                await admin.apply_raw(workload("a-new", "again"))
                await admin.patch("Workload", "b-web", {"metadata": {"labels": {"x": "y"}}}, namespace="again")
                (_, added), (_, changed) = await read_events(stream, 2)
            assert int(changed["_id"]) > int(added["_id"]) > int(revision)
            async with browser.get(url, headers={"Last-Event-ID": added["_id"]}) as stream:  # as EventSource does
                await admin.apply_raw(workload("c-late", "again"))
                events = await read_events(stream, 2)
    assert [(name, data["key"]) for name, data in events] == [("row", "again/b-web"), ("row", "again/c-late")]


async def read_events(stream: aiohttp.ClientResponse, count: int) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    name = ident = ""
    async with asyncio.timeout(30):
        while len(found) < count:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("id: "):
                ident = line[len("id: "):]
            elif line.startswith("data: ") and name:
                found.append((name, {**json.loads(line[len("data: "):]), **({"_id": ident} if ident else {})}))
                ident = ""
    return found


async def test_a_view_only_user_sees_no_buttons_and_is_refused_when_forcing_an_action(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "viewer", "view")
        await bind(admin, "octocat", "edit")
        await admin.apply_raw(workload("web", "acts"))
        async with await web_login(gateway.url, api.pki.ca_cert, github, VIEWER) as viewer:
            async with viewer.get(gateway.url + "/ui/workloads/acts/web") as page:
                html = await page.text()
                assert page.status == 200 and "Workload web" in html and "data-action" not in html
            async with viewer.post(gateway.url + "/ui/actions/acts/web/start", headers={"X-Persys-UI": "1"}) as r:
                assert r.status == 403 and "github:viewer" in (await r.json())["message"]
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as editor:
            async with editor.get(gateway.url + "/ui/workloads/acts/web") as page:
                html = await page.text()
                assert 'data-action="start"' in html and 'data-action="delete"' in html
            async with editor.post(gateway.url + "/ui/actions/acts/web/start") as r:  # not from the dashboard
                assert r.status == 403 and "X-Persys-UI" in (await r.json())["message"]
            async with editor.post(gateway.url + "/ui/actions/acts/web/explode", headers={"X-Persys-UI": "1"}) as r:
                assert r.status == 400 and "action: must be one of" in (await r.json())["message"]
            async with editor.post(gateway.url + "/ui/actions/acts/web/start", headers={"X-Persys-UI": "1"}) as r:
                assert r.status == 200, await r.text()
        assert (await admin.get("Workload", "web", "acts")).spec["desiredState"] == "Running"


async def test_custom_kinds_are_listed_and_shown_with_their_printer_columns_and_kept_live(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        await admin.request("PUT", RD_PATH, body=definition())
        await admin.request("PUT", f"{BACKUPS}/nightly", body=backup("nightly", retention={"days": 30}))
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser:
            async with browser.get(gateway.url + "/ui/kinds") as page:
                html = await page.text()
                assert '<a href="/ui/kinds/backup.example.com/backups">Backup</a>' in html
                assert "Source, Days, Phase" in html
            async with browser.get(gateway.url + "/ui/kinds/backup.example.com/backups?namespace=default") as page:
                html = await page.text()
                heads = re.findall(r'<th scope="col">([A-Z]+)</th>', html)
                assert heads == ["NAMESPACE", "NAME", "SOURCE", "DAYS", "PHASE", "AGE"]
                assert '<td data-col="DAYS">30</td>' in html and names(html) == ["nightly"]
            async with browser.get(gateway.url + "/ui/kinds/backup.example.com/backups/default/nightly") as page:
                html = await page.text()
                assert page.status == 200 and "Backup nightly" in html
                assert '<dd data-field="SOURCE">web</dd>' in html
                revision = re.search(r'data-live="[^"]+\?rv=(\d+)"', html)
            assert revision is not None
            url = f"{gateway.url}/ui/live/object/backup.example.com/backups/default/nightly?rv={revision.group(1)}"
            async with browser.get(url) as stream:
                await admin.request("PUT", f"{BACKUPS}/nightly", body=backup("nightly", retention={"days": 31}))
                events = await read_events(stream, 2)
            assert events[0][0] == "html" and events[0][1]["target"] == "summary"
            assert '<dd data-field="DAYS">31</dd>' in events[0][1]["html"]
            async with browser.get(gateway.url + "/ui/kinds/backup.example.com/nothings") as page:
                assert page.status == 404 and "no kind &#39;nothings&#39;" in await page.text()


async def test_the_overview_stream_counts_phases_and_nodes_and_samples_the_statistics(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        await admin.apply_raw(workload("one", "census"))
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser, \
                browser.get(gateway.url + "/ui/live/overview") as stream:
            samples: list[dict[str, Any]] = []

            def pending_counted(name: str, data: dict[str, Any]) -> bool:
                if name == "sample":  # the first sample and the first counts come in either order
                    samples.append(data)
                return counted("Pending", 1)(name, data)

            await next_event(stream, pending_counted)
            sample = samples[0] if samples else await next_event(stream, lambda name, data: name == "sample")
            assert sample["actions"] == 0 and sample["errors"] == 0
            await admin.apply_raw(workload("two", "census"))
            await next_event(stream, counted("Pending", 2))


def counted(phase: str, count: int) -> Callable[[str, dict[str, Any]], bool]:
    return lambda name, data: name == "html" and f'<td data-phase="{phase}">{count}</td>' in data["html"]


async def next_event(stream: aiohttp.ClientResponse, wanted: Callable[[str, dict[str, Any]], bool]) -> dict[str, Any]:
    """The data of the next event of the stream that is ``wanted`` (those before it are passed over)."""
    while True:
        name, data = (await read_events(stream, 1))[0]
        if wanted(name, data):
            return data


async def test_nodes_show_allocatable_against_requested(gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        await admin.apply_raw({"apiVersion": "persys.dev/v1", "kind": "Node", "metadata": {"name": "n1"},
                               "spec": {"address": "127.0.0.1:9"}})
        await admin.update_status("Node", "n1", {"allocatable": {"cpu": "2", "memory": "1Gi"}}, namespace="")
        placed = workload("big", "nodes")
        placed["spec"].update(nodeName="n1", resources={"cpu": "500m", "memory": "256Mi"})
        await admin.apply_raw(placed)
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser, \
                browser.get(gateway.url + "/ui/nodes") as page:
            html = await page.text()
    assert "n1" in html and "NotReady" in html and "500m of 2" in html and "256Mi of 1Gi" in html
    assert '<a href="/ui/workloads/nodes/big">nodes/big</a>' in html


async def test_a_workload_not_yet_on_a_node_says_why_it_has_no_logs(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        await admin.apply_raw(workload("waiting", "logs"))
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser:
            async with browser.get(gateway.url + "/ui/workloads/logs/waiting") as page:
                assert page.status == 200 and "is not scheduled to a node yet" in await page.text()
            async with browser.get(gateway.url + "/ui/workloads/logs/missing") as page:
                assert page.status == 404 and "missing" in await page.text()


async def test_the_nodes_page_is_kept_live(gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        await admin.apply_raw({"apiVersion": "persys.dev/v1", "kind": "Node", "metadata": {"name": "live-n1"},
                               "spec": {"address": "127.0.0.1:9"}})
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser:
            async with browser.get(gateway.url + "/ui/nodes") as page:
                assert 'data-live="/ui/live/nodes"' in await page.text()
            async with browser.get(gateway.url + "/ui/live/nodes") as stream:
                first = await next_event(stream, lambda name, data: name == "html")
                assert first["target"] == "nodes" and 'data-key="live-n1"' in first["html"]
                placed = workload("late", "nodes-live")
                placed["spec"].update(nodeName="live-n1", resources={"cpu": "250m"})
                await admin.apply_raw(placed)
                await next_event(stream, lambda name, data: "nodes-live/late" in data.get("html", ""))
                await admin.update_status("Node", "live-n1", {"allocatable": {"cpu": "1"}, "conditions": [
                    {"type": "Ready", "status": "True", "reason": "AgentReady"}]}, namespace="")
                ready = await next_event(stream, lambda name, data: "250m of 1" in data.get("html", ""))
                section = ready["html"][ready["html"].index('data-key="live-n1"'):]
                assert "NotReady" not in section.split("</h2>")[0]


def replica(name: str, owner_uid: str, revision: str) -> dict[str, Any]:
    obj = workload(name, "deploy", app="web", **{"persys.dev/template-hash": revision})
    if owner_uid:
        obj["metadata"]["ownerReferences"] = [{"apiVersion": "persys.dev/v1", "kind": "Deployment",
                                               "name": "web", "uid": owner_uid, "controller": True}]
    return obj


async def test_deployments_show_their_rollout_replicas_and_history_live(
        gateway: Gateway, api: RunningApi, github: FakeGitHub) -> None:
    async with api.client() as admin:
        await bind(admin, "octocat", "view")
        created, _ = await admin.apply_raw({
            "apiVersion": "persys.dev/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "deploy"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"image": "persys/busybox:local", "command": ["sleep", "60"]}}}})
        uid = created.metadata.uid
        for name, owner, revision in [("web-new1", uid, "aaaaaaaaaa"), ("web-new2", uid, "aaaaaaaaaa"),
                                      ("web-old1", uid, "bbbbbbbbbb"), ("web-stray", "", "aaaaaaaaaa")]:
            await admin.apply_raw(replica(name, owner, revision))
            await admin.update_status("Workload", name, {"phase": "Running"}, namespace="deploy")
        revisions = [{"revision": 1, "templateHash": "bbbbbbbbbb", "available": True},
                     {"revision": 2, "templateHash": "aaaaaaaaaa", "available": False,
                      "changeCause": "image bump"}]
        status = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 3,
                  "availableReplicas": 3, "templateHash": "aaaaaaaaaa", "currentRevision": 2, "revisions": revisions}
        await admin.update_status("Deployment", "web", status, namespace="deploy")
        async with await web_login(gateway.url, api.pki.ca_cert, github, OCTOCAT) as browser:
            async with browser.get(gateway.url + "/ui/deployments?namespace=deploy") as page:
                html = await page.text()
            assert page.status == 200 and names(html) == ["web"] and 'data-state="Progressing"' in html
            assert 'href="/ui/deployments/deploy/web"' in html and 'aria-current="page">Deployments' in html
            async with browser.get(gateway.url + "/ui/deployments/deploy/web") as page:
                html = await page.text()
            assert page.status == 200 and "1 old replicas are pending termination" in html
            replicas = html[html.index('id="replicas"'):html.index('id="history"')]
            assert re.findall(r'data-key="deploy/([^"]+)"', replicas) == ["web-new1", "web-new2", "web-old1"]
            assert "image bump" in html and "(current)" in html
            live = re.search(r'data-live="([^"]+)"', html)
            assert live is not None
            async with browser.get(gateway.url + live.group(1).replace("&amp;", "&")) as stream:
                first = await next_event(stream, lambda name, data: data.get("target") == "replicas")
                assert "web-old1" in first["html"] and "web-stray" not in first["html"]
                await admin.delete("Workload", "web-old1", namespace="deploy")
                await admin.update_status("Deployment", "web", {**status, "replicas": 2, "readyReplicas": 2,
                                                                "availableReplicas": 2}, namespace="deploy")
                done = await next_event(stream, lambda name, data: data.get("target") == "summary"
                                        and "successfully rolled out" in data["html"])
                assert 'data-state="Complete"' in done["html"]
                await next_event(stream, lambda name, data: data.get("target") == "replicas"
                                 and "web-old1" not in data["html"] and "web-new2" in data["html"])
            async with browser.get(gateway.url + "/ui/deployments/deploy/nothing") as page:
                assert page.status == 404 and "nothing" in await page.text()
