"""Which workloads a push concerns, row by row (``persys.client.revisions``)."""

from __future__ import annotations

from typing import Any

import pytest

from persys.client.revisions import deployed, follows, normal_url
from persys.resources import REGISTRY, Resource

A = "a" * 40
B = "b" * 40


@pytest.mark.parametrize(("one", "other", "same"), [
    ("https://github.com/acme/shop.git", "https://github.com/acme/shop", True),
    ("https://GitHub.com/acme/shop/", "https://github.com/acme/shop", True),
    ("https://github.com/acme/shop", "https://github.com/acme/shop-api", False),
    ("https://github.com/Acme/Shop", "https://github.com/acme/shop", False),  # paths keep their case
    ("file:///srv/repos/app.git", "file:///srv/repos/app", True),
    ("/srv/repos/app", "/srv/repos/app.git/", True),
    ("https://github.com:443/acme/shop", "https://github.com/acme/shop", False),
])
def test_repository_urls_compare_without_cosmetics(one: str, other: str, same: bool) -> None:
    assert (normal_url(one) == normal_url(other)) is same


def compose(repo: str = "https://github.com/acme/shop", ref: str = "main", revision: str = "",
            deployed_revision: str = "", kind: str = "compose") -> Resource:
    spec: dict[str, Any] = {"type": kind, "image": "persys/busybox:local"} if kind == "container" else \
        {"type": "compose", "compose": {"repo": repo, "ref": ref, **({"revision": revision} if revision else {})}}
    obj = REGISTRY.parse({"kind": "Workload", "metadata": {"name": "shop"}, "spec": spec})
    if deployed_revision:
        obj.status["deployedRevision"] = deployed_revision
    return obj


URLS = ["https://github.com/acme/shop.git", "https://github.com/acme/shop", "git://github.com/acme/shop.git"]


@pytest.mark.parametrize(("workload", "branch", "default_branch", "expected"), [
    (compose(), "main", "main", True),
    (compose(ref="release"), "main", "main", False),
    (compose(ref=""), "main", "main", True),  # no ref: the default branch
    (compose(ref=""), "dev", "main", False),
    (compose(ref=""), "main", "", False),  # no default branch known: an empty ref follows nothing named
    (compose(repo="https://github.com/acme/other"), "main", "main", False),
    (compose(kind="container"), "main", "main", False),
])
def test_which_workloads_follow_a_branch(workload: Resource, branch: str, default_branch: str,
                                         expected: bool) -> None:
    assert follows(workload, URLS, branch, default_branch) is expected


def test_the_deployed_commit_is_the_asked_one_else_the_running_one() -> None:
    assert deployed(compose(revision=A, deployed_revision=B)) == A
    assert deployed(compose(deployed_revision=B)) == B
    assert deployed(compose()) == ""


def test_a_compose_app_without_a_revision_keeps_its_spec_and_hash() -> None:
    """No default: an app stored before revisions existed is not replaced by its next apply."""
    from persys.resources.hashing import spec_hash

    manifest = {"kind": "Workload", "metadata": {"name": "shop"},
                "spec": {"type": "compose", "compose": {"repo": "https://github.com/acme/shop", "ref": "main"}}}
    first, again = REGISTRY.parse(manifest), REGISTRY.parse(manifest)
    assert "revision" not in first.spec["compose"]
    assert spec_hash(first.spec) == spec_hash(again.spec)


def test_a_branch_may_be_named_as_a_ref() -> None:
    assert follows(compose(ref="refs/heads/main"), URLS, "main", "main")
    assert follows(compose(), URLS, "refs/heads/main", "main")
