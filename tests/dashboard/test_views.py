"""The dashboard's view logic, row by row: failing workloads, rows and columns, paging cursors, which added
objects fall on an open page, the overview's census and the nodes' usage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from persys.errors import BadRequest
from persys.gateway.dashboard import views
from persys.resources import Resource
from persys.resources.definitions import from_description
from persys.resources.kinds import DEPLOYMENT, NODE, WORKLOAD
from persys.resources.model import OwnerReference


def wl(name: str, namespace: str = "default", **status: Any) -> Resource:
    spec = status.pop("spec", {"image": "busybox"})
    return WORKLOAD.from_wire({"apiVersion": "persys.dev/v1", "kind": "Workload",
                               "metadata": {"name": name, "namespace": namespace}, "spec": spec, "status": status})


def node(name: str, **status: Any) -> Resource:
    return NODE.from_wire({"apiVersion": "persys.dev/v1", "kind": "Node", "metadata": {"name": name}, "spec": {},
                           "status": status})


@pytest.mark.parametrize(("status", "failing"), [
    ({"phase": "Running"}, False),
    ({}, False),  # Pending
    ({"phase": "CrashLoopBackOff"}, True),
    ({"phase": "Failed"}, True),
    ({"phase": "ImagePullBackOff"}, True),
    ({"phase": "CreateContainerError"}, True),
    ({"phase": "Exited", "exitCode": 0}, False),
    ({"phase": "Exited", "exitCode": 1}, True),
    ({"phase": "Exited"}, False),  # no code reported yet
    ({"phase": "Stopped", "exitCode": 137}, False),  # stopped on purpose
])
def test_failing(status: dict[str, Any], failing: bool) -> None:
    assert views.failing(wl("w", **status)) is failing


def test_a_workload_row_has_its_columns_and_a_failing_one_a_logs_link() -> None:
    ok = views.row(WORKLOAD, wl("web", "shop", phase="Running", restarts=2, nodeName="n1"))
    assert ok.key == "shop/web" and ok.href == "/ui/workloads/shop/web" and ok.logs == "" and not ok.failing
    assert dict(zip(views.headers(WORKLOAD), ok.cells, strict=True))["RESTARTS"] == "2"
    bad = views.row(WORKLOAD, wl("crasher", phase="CrashLoopBackOff"))
    assert bad.failing and bad.logs == "/ui/workloads/default/crasher#logs" and bad.phase == "CrashLoopBackOff"


def test_a_custom_kind_row_uses_the_declared_printer_columns() -> None:
    backup = from_description({"kind": "Backup", "plural": "backups", "namespaced": True, "group": "b.example.com",
                               "version": "v1", "printerColumns": [
                                   {"name": "Source", "type": "string", "jsonPath": ".spec.source"},
                                   {"name": "Days", "type": "integer", "jsonPath": ".spec.retention.days"}]})
    obj = backup.from_wire({"apiVersion": "b.example.com/v1", "kind": "Backup",
                            "metadata": {"name": "nightly", "namespace": "data"},
                            "spec": {"source": "db", "retention": {"days": 7}}})
    row = views.row(backup, obj)
    assert views.headers(backup) == ("NAMESPACE", "NAME", "SOURCE", "DAYS", "AGE")
    assert row.cells[:4] == ("data", "nightly", "db", "7")
    assert row.href == "/ui/kinds/b.example.com/backups/data/nightly" and not row.failing


@pytest.mark.parametrize("cursor", [views.Cursor(), views.Cursor("abc==", 0), views.Cursor("x" * 300, 499)])
def test_a_cursor_survives_its_link(cursor: views.Cursor) -> None:
    assert views.Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize("text", ["not-a-token", "eyJjIjoxfQ", "eyJjIjoiYSIsInMiOi0xfQ", "eyJjIjoiYSIsInMiOnRydWV9",
                                  "%%%"])
def test_a_bad_cursor_names_continue(text: str) -> None:
    with pytest.raises(BadRequest, match="^continue: "):
        views.Cursor.decode(text)


class Api:
    """A list the API would page: ``limit`` keys from the position the token names, of which it sends those
    ``keep`` keeps (as a label selector drops objects from a page)."""

    def __init__(self, names: list[str], keep: Callable[[str], bool] = lambda name: True) -> None:
        self.objects = [wl(n) for n in names]
        self.keep = keep
        self.calls: list[tuple[int, str]] = []

    async def fetch(self, limit: int, token: str) -> tuple[list[Resource], str, str]:
        self.calls.append((limit, token))
        start = int(token or 0)
        end = start + limit
        kept = [o for o in self.objects[start:end] if self.keep(o.metadata.name)]
        return kept, str(end) if end < len(self.objects) else "", "42"


async def test_pages_follow_the_api_continue_token() -> None:
    api = Api([f"w{i:03d}" for i in range(120)])
    first = await views.page(api.fetch, views.Cursor(), size=50)
    assert [o.metadata.name for o in first.items] == [f"w{i:03d}" for i in range(50)]
    assert first.following == views.Cursor("50", 0) and first.revision == "42"
    last = await views.page(api.fetch, views.Cursor("100", 0), size=50)
    assert len(last.items) == 20 and last.following is None
    assert api.calls == [(50, ""), (50, "100")]  # one API page per page


async def test_short_api_pages_are_read_on_until_the_page_is_full_and_it_remembers_where_it_stopped() -> None:
    names = [f"{'match' if i % 3 else 'other'}-{i:04d}" for i in range(1200)]
    api = Api(names, keep=lambda name: name.startswith("match"))
    wanted = [n for n in names if "match" in n]
    first = await views.page(api.fetch, views.Cursor(), size=50)
    assert [o.metadata.name for o in first.items] == wanted[:50]
    assert first.following is not None and first.following.skip > 0  # the next page starts inside an API page
    second = await views.page(api.fetch, first.following, size=50)
    assert [o.metadata.name for o in second.items] == wanted[50:100]
    rest = await views.page(api.fetch, second.following or views.Cursor(), size=1000)
    assert [o.metadata.name for o in rest.items] == wanted[100:] and rest.following is None


@pytest.mark.parametrize(("key", "first", "last", "belongs"), [
    ("ns/m", False, False, True),   # between the page's first and last keys
    ("ns/a", False, False, False),  # before its first: an earlier page's
    ("ns/a", True, False, True),    # ... unless this is the first page
    ("ns/z", False, False, False),  # after its last: a later page's
    ("ns/z", False, True, True),    # ... unless this is the last page
    ("ns/c", False, False, True),   # the first key itself
    ("ns/x", False, False, True),   # the last key itself
])
def test_which_added_objects_fall_on_an_open_page(key: str, first: bool, last: bool, belongs: bool) -> None:
    assert views.belongs(key, "ns/c", "ns/x", first_page=first, last_page=last) is belongs


def test_an_empty_page_that_is_first_and_last_takes_everything() -> None:
    assert views.belongs("ns/anything", "", "", first_page=True, last_page=True)


def test_the_census_follows_events() -> None:
    census = views.Census()
    census.workload("ADDED", wl("a", phase="Running"))
    census.workload("ADDED", wl("b", phase="Running"))
    census.workload("ADDED", wl("c", phase="CrashLoopBackOff"))
    census.workload("ADDED", wl("d"))
    assert census.counts() == [("Pending", 1), ("Running", 2), ("CrashLoopBackOff", 1)]
    assert census.failing() == [("default/c", "CrashLoopBackOff")]
    census.workload("MODIFIED", wl("c", phase="Running"))
    census.workload("DELETED", wl("a", phase="Running"))
    assert census.counts() == [("Pending", 1), ("Running", 2)] and census.failing() == []
    census.node("ADDED", node("n1"), True)
    census.node("ADDED", node("n2"), False)
    census.node("MODIFIED", node("n2"), True)
    census.node("ADDED", node("n3"), False)
    census.node("DELETED", node("n1"), True)
    assert census.ready() == (1, 1)


def test_stats_samples_add_up_actions() -> None:
    assert views.stats_sample({"actions": {"create": 3, "restart": 2}, "errors": 1, "totalProcessed": 9}) == {
        "actions": 5, "errors": 1, "processed": 9}
    assert views.stats_sample({}) == {"actions": 0, "errors": 0, "processed": 0}


def test_node_usage_counts_the_requests_of_the_workloads_bound_to_each_node() -> None:
    nodes = [(node("n1", allocatable={"cpu": "2", "memory": "1Gi"}), True), (node("n2", capacity={"cpu": "1"}), False),
             (node("n3"), True)]
    placed = [wl("a", nodeName="n1", spec={"image": "x", "resources": {"cpu": "500m", "memory": "256Mi"}}),
              wl("b", nodeName="n1", spec={"image": "x", "resources": {"cpu": "250m"}}),
              wl("c", spec={"image": "x", "nodeName": "n2", "resources": {"memory": "64Mi"}}),
              wl("d", nodeName="gone", spec={"image": "x", "resources": {"cpu": "1"}}),
              wl("e", spec={"image": "x"})]
    n1, n2, n3 = views.node_usage(nodes, placed)
    assert (n1.cpu_used, n1.cpu, n1.memory_used, n1.memory) == (750, 2000, 256 * 2**20, 2**30)
    assert n1.cpu_text == "750m of 2" and n1.memory_text == "256Mi of 1Gi" and n1.percent(750, 2000) == 38
    assert [w.metadata.name for w in n1.workloads] == ["a", "b"]
    assert (n2.ready, n2.cpu, n2.memory, n2.memory_text) == (False, 1000, None, "64Mi of no limit")
    assert n3.workloads == [] and n3.percent(0, None) == 0


def deployment(**status: Any) -> Resource:
    obj = DEPLOYMENT.parse({"kind": "Deployment", "metadata": {"name": "web", "namespace": "prod", "uid": "d-1"},
                            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                                     "template": {"metadata": {"labels": {"app": "web"}},
                                                  "spec": {"image": "busybox"}}}})
    obj.status.update({"observedGeneration": obj.metadata.generation, **status})
    return obj


def test_a_deployment_row_links_to_its_page_and_shows_its_rollout() -> None:
    obj = deployment(replicas=4, updatedReplicas=1, availableReplicas=3)
    row = views.row(DEPLOYMENT, obj)
    assert views.headers(DEPLOYMENT)[-1] == "ROLLOUT" and row.cells[-1] == "Progressing"
    assert len(row.cells) == len(views.headers(DEPLOYMENT))
    assert row.href == "/ui/deployments/prod/web" and row.progress is not None and row.progress.percent(1) == 25


def owned(name: str, revision: str, owner: str = "d-1", controller: bool = True, **status: Any) -> Resource:
    obj = wl(name, "prod", **status)
    obj.metadata.labels["persys.dev/template-hash"] = revision
    obj.metadata.ownerReferences = [OwnerReference("persys.dev/v1", "Deployment", "web", owner, controller)]
    return obj


@pytest.mark.parametrize(("why", "workload", "shown", "current", "ready"), [
    ("current revision, running, no probe", owned("b", "new", phase="Running"), True, True, True),
    ("old revision", owned("a", "old", phase="Running"), True, False, True),
    ("ready condition wins over the phase", owned("c", "new", phase="Running", conditions=[
        {"type": "Ready", "status": "False"}]), True, True, False),
    ("pending", owned("d", "new"), True, True, False),
    ("another deployment's", owned("e", "new", owner="d-2"), False, False, False),
    ("owned but not controlled", owned("f", "new", controller=False), False, False, False),
    ("no owner", wl("g", "prod"), False, False, False),
])
def test_replicas(why: str, workload: Resource, shown: bool, current: bool, ready: bool) -> None:
    found = views.replicas(deployment(templateHash="new"), [workload])
    assert bool(found) is shown, why
    if found:
        assert (found[0].current, found[0].ready) == (current, ready), why


def test_replicas_list_the_current_revision_first() -> None:
    found = views.replicas(deployment(templateHash="new"), [owned("a", "old"), owned("z", "new"), owned("m", "new")])
    assert [r.name for r in found] == ["m", "z", "a"]
