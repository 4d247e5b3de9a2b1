"""Workload and metadata rules that span fields, and the shipped manifests, which must keep validating."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from persys.errors import Invalid
from persys.resources import REGISTRY, manifest

ROOT = Path(__file__).resolve().parents[2]


def fields_refused(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, str]:
    body = {"kind": "Workload", "metadata": {"name": "web", **meta}, "spec": spec or {"image": "busybox"}}
    with pytest.raises(Invalid) as caught:
        REGISTRY.parse(body)
    return {c.field: c.message for c in caught.value.causes}


def test_backoff_initial_above_max_is_refused() -> None:
    causes = fields_refused({"image": "busybox", "backoff": {"initialSeconds": 10, "maxSeconds": 1}})
    assert causes == {"spec.backoff.initialSeconds": "must not exceed spec.backoff.maxSeconds (1)"}


@pytest.mark.parametrize("seconds", [-1, 86401, 1e308])
def test_backoff_out_of_range_is_refused(seconds: float) -> None:
    causes = fields_refused({"image": "busybox", "backoff": {"maxSeconds": seconds}})
    assert causes == {"spec.backoff.maxSeconds": "must be 0-86400"}


def test_compose_file_is_checked_relative_to_compose_path() -> None:
    compose = {"repo": "https://example.com/a.git", "path": "deploy", "file": "../../../etc/passwd"}
    causes = fields_refused({"type": "compose", "compose": compose})
    assert causes == {"spec.compose.file": "must stay inside the repository (no '..' leading out of it)"}
    REGISTRY.parse({"kind": "Workload", "metadata": {"name": "web"},
                    "spec": {"type": "compose", "compose": {**compose, "file": "../compose.yaml"}}})


def test_metadata_labels_and_annotations_follow_qualified_names() -> None:
    causes = fields_refused(labels={"ok": "fine", "bad key!": "x", "app": "a b"}, annotations={"a/b/c": "text"})
    assert set(causes) == {"metadata.labels.bad key!", "metadata.labels.app", "metadata.annotations.a/b/c"}


def test_requests_are_bounded_but_node_capacity_is_not() -> None:
    causes = fields_refused({"image": "busybox", "resources": {"cpu": "2048", "memory": "64Ti"}})
    assert causes == {"spec.resources.cpu": "must be at most 1024 cores",
                      "spec.resources.memory": "must be at most 16Ti"}
    status = REGISTRY.get("Node").parse_status({"capacity": {"cpu": "2048", "memory": "64Ti"}})
    assert status["capacity"] == {"cpu": "2048", "memory": "64Ti"}


@pytest.mark.parametrize("path", sorted((ROOT / "manifests").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_manifests_still_validate(path: Path) -> None:
    """Not a hostile case: the guard that the rules above refuse nothing the project ships."""
    for source, document in manifest.load(str(path)):
        assert REGISTRY.parse(document).metadata.name, source
