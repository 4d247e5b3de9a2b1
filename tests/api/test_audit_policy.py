"""The audit policy, rule by rule, its Secret cap and its errors; the file sink's size rotation."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
import yaml

from persys.api.audit.filesink import FileSink
from persys.api.audit.policy import Attributes, Level, default_policy, load_policy, parse_policy
from persys.errors import Invalid
from tests.support.cluster import cli

ADMIN = ("admin", ("persys:admins", "system:authenticated"))
NODE = ("n1", ("persys:agents", "system:authenticated"))


def obj(verb: str, resource: str = "workloads", *, who: tuple[str, tuple[str, ...]] = ADMIN, kind: str = "Workload",
        sub: str = "", namespace: str = "default", name: str = "web", sensitive: bool = False) -> Attributes:
    return Attributes(who[0], who[1], verb, f"/apis/persys.dev/v1/{resource}", kind, "persys.dev", resource, sub,
                      namespace, name, sensitive)


POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  users: [n1]
  verbs: [update]
  resources: [{group: persys.dev, resources: [workloads/status]}]
- level: RequestResponse
  kinds: [secret]
- level: Metadata
  userGroups: [persys:agents]
- level: RequestResponse
  resources: [{resources: [workloads], resourceNames: [db]}]
- level: None
  nonResourceURLs: [/reconciliation/*]
- level: Metadata
  namespaces: [kube-system]
- level: Request
  verbs: [create, update, patch, delete]
"""


@pytest.mark.parametrize(("attrs", "level"), [
    (obj("update", who=NODE, sub="status"), Level.NONE),  # rule 0: the node's status writes
    (obj("update", who=ADMIN, sub="status"), Level.REQUEST),  # not rule 0 (another user), nor 2-5: the last
    (obj("update", who=NODE), Level.METADATA),  # rule 2 (not 0: no subresource)
    (obj("get", "secrets", kind="Secret", sensitive=True), Level.METADATA),  # rule 1 says more: capped
    (obj("patch", name="db"), Level.REQUEST_RESPONSE),  # rule 3, before the last
    (obj("patch", name="db", sub="status"), Level.REQUEST),  # "workloads" does not match its subresources
    (Attributes("admin", ADMIN[1], "post", "/reconciliation/trigger"), Level.NONE),  # rule 4
    (Attributes("admin", ADMIN[1], "get", "/apis"), Level.NONE),  # no rule matches a non-resource read
    (obj("create", namespace="kube-system"), Level.METADATA),  # rule 5
    (obj("get"), Level.NONE),  # no rule: not recorded
])
def test_first_matching_rule_wins(attrs: Attributes, level: Level) -> None:
    assert parse_policy(yaml.safe_load(POLICY)).level(attrs) == level


def test_subresource_patterns() -> None:
    policy = parse_policy({"rules": [{"level": "Metadata", "resources": [{"resources": ["*/status"]}]},
                                     {"level": "Request", "resources": [{"resources": ["workloads/*"]}]}]})
    assert policy.level(obj("update", sub="status")) == Level.METADATA
    assert policy.level(obj("create", sub="reconcile")) == Level.REQUEST
    assert policy.level(obj("create")) == Level.REQUEST  # as in Kubernetes, "workloads/*" takes workloads too
    assert policy.level(obj("create", "nodes", kind="Node")) == Level.NONE


def test_default_policy_reads_none_writes_request_secrets_metadata() -> None:
    policy = default_policy()
    assert policy.level(obj("get")) == Level.NONE and policy.level(obj("watch")) == Level.NONE
    assert policy.level(obj("create")) == Level.REQUEST and policy.level(obj("delete")) == Level.REQUEST
    assert policy.level(obj("get", "secrets", kind="Secret", sensitive=True)) == Level.METADATA
    assert policy.level(obj("update", "secrets", kind="Secret", sensitive=True)) == Level.METADATA


@pytest.mark.parametrize(("document", "field"), [
    ({"rules": [{"level": "Everything"}]}, "rules[0].level"),
    ({"rules": [{"verbs": ["get"]}]}, "rules[0].level"),
    ({"rules": [{"level": "None"}, {"level": "Metadata", "usres": ["x"]}]}, "rules[1].usres"),
    ({"rules": [{"level": "None", "verbs": "get"}]}, "rules[0].verbs"),
    ({"rules": [{"level": "None", "resources": [{"resource": ["a"]}]}]}, "rules[0].resources[0].resource"),
    ({"rules": "all"}, "rules"),
    ({"kind": "Pod", "rules": []}, "kind"),
    ({"apiVersion": "audit.k8s.io/v1beta1", "rules": []}, "apiVersion"),
])
def test_bad_policies_name_the_field(document: object, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_policy(document, "p.yaml")
    assert field in [cause.field for cause in caught.value.causes]
    assert "p.yaml" in caught.value.message and field in caught.value.message


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("rules: [level: None\n")
    with pytest.raises(Invalid, match="not YAML"):
        load_policy(tmp_path / "bad.yaml")


def test_server_refuses_a_bad_policy_at_startup(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n- level: Loud\n")
    code, _, err = cli(tmp_path / "home", "server", "--audit-policy", str(policy), "--etcd", "http://127.0.0.1:9")
    assert code == 1
    assert "rules[0].level" in err and "'Loud' is not a level" in err


def test_up_refuses_a_bad_loki_url(tmp_path: Path) -> None:
    code, _, err = cli(tmp_path / "home", "up", "--audit-loki-url", "loki:3100")
    assert code == 1 and "--audit-loki-url" in err


async def test_file_rotates_by_size_and_keeps_max_files(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, max_bytes=1000, max_files=2, queue_size=1000)
    writer = asyncio.create_task(sink.run())
    try:
        for i in range(60):  # ~100 bytes a line: 10 lines a file
            sink.offer(json.dumps({"n": i, "pad": "x" * 80}))
            if i % 7 == 0:
                await asyncio.sleep(0)  # let the writer take several batches
        assert await sink.drained(10)
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    check_rotation(tmp_path, sink)


def check_rotation(directory: Path, sink: FileSink) -> None:
    assert sorted(p.name for p in directory.iterdir()) == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all(p.stat().st_size <= 1000 for p in directory.iterdir())
    kept = [json.loads(line)["n"] for path in sink.files() for line in path.read_text().splitlines()]
    assert kept == list(range(60 - len(kept), 60)) and len(kept) > 20  # the newest, in order, nothing in between lost
    assert oct(sink.current.stat().st_mode & 0o777) == "0o600"


async def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    from persys.api.audit.drops import DROPPED

    before = DROPPED.labels("file", "queue_full")._value.get()
    sink = FileSink(tmp_path, max_bytes=10_000, max_files=1, queue_size=3)
    for i in range(5):
        sink.offer(str(i))
    assert sink.queue.qsize() == 3
    assert DROPPED.labels("file", "queue_full")._value.get() - before == 2
