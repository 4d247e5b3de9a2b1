"""The git poller against real git repositories and a real etcd: a missed push is caught by the poll."""

from __future__ import annotations

from pathlib import Path

from controller_support import ManagerFactory, eventually

from persys.resources import REGISTRY, Resource
from persys.store import ObjectStore
from tests.support.gitrepo import commit, new_repo


async def follower(store: ObjectStore, name: str, repo: str, deployed: str = "") -> Resource:
    created = await store.create(REGISTRY.parse({"kind": "Workload", "metadata": {"name": name}, "spec": {
        "type": "compose", "compose": {"repo": repo, "ref": "main"}}}))
    if deployed:  # as the status controller writes what the agent reports
        created = await store.modify("Workload", "default", name,
                                     lambda w: w.status.__setitem__("deployedRevision", deployed))
    return created


async def revision(store: ObjectStore, name: str) -> str:
    return str((await store.get("Workload", "default", name)).spec["compose"].get("revision", ""))


async def test_a_new_commit_on_the_followed_branch_becomes_the_revision(
        store: ObjectStore, controllers: ManagerFactory, tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "app")
    first = commit(repo, "one")
    url = repo.as_uri()
    await follower(store, "deployed", url, deployed=first)
    await follower(store, "not-yet", url)  # never deployed: its first deployment takes the tip itself
    await follower(store, "elsewhere", (tmp_path / "missing").as_uri(), deployed=first)  # cannot be asked
    await controllers(controllers=["git-poller"], git_poll_seconds=0.2)
    second = commit(repo, "two")
    await eventually(lambda: _is(store, "deployed", second), what="the new tip pinned")
    assert await revision(store, "not-yet") == ""
    assert await revision(store, "elsewhere") == ""
    third = commit(repo, "three")
    await eventually(lambda: _is(store, "deployed", third), what="the next tip pinned")


async def _is(store: ObjectStore, name: str, wanted: str) -> bool:
    return await revision(store, name) == wanted
