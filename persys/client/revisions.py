"""Which compose workloads follow a repository's branch, and asking them to deploy a commit.

A push webhook (the gateway) and the ``git ls-remote`` poll (the controllers) both end here: every
compose workload whose ``spec.compose.repo`` is the repository (under any of the URLs it is known
by) and whose ``spec.compose.ref`` is the branch (an empty ref: the repository's default branch)
gets the commit as ``spec.compose.revision``, by a merge patch through the API, unless it already
has it. The spec changes, so the reconciler has the agent fetch that commit and bring the app up
again; ``status.deployedRevision`` says when it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from persys.client.api import ApiClient
from persys.errors import NotFound
from persys.resources.model import Resource


def normal_url(url: str) -> str:
    """A repository URL as compared: scheme and host in lower case, no credentials, no trailing ``/``
    or ``.git`` (``https://GitHub.com/o/r.git/`` and ``https://github.com/o/r`` are one repository)."""
    url = url.strip()
    parts = urlsplit(url) if "://" in url else None
    if parts is None:
        path = url
    else:
        host = (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")
        path = urlunsplit((parts.scheme.lower(), host, parts.path, "", ""))
    path = path.rstrip("/")
    return path.removesuffix(".git").rstrip("/")


def follows(workload: Resource, urls: Iterable[str], branch: str, default_branch: str = "") -> bool:
    """Whether ``workload`` is a compose app built from one of ``urls`` at ``branch``."""
    compose = workload.spec.get("compose") or {}
    if workload.spec.get("type") != "compose" or not compose.get("repo"):
        return False
    if normal_url(str(compose["repo"])) not in {normal_url(u) for u in urls}:
        return False
    ref, branch = str(compose.get("ref") or "").removeprefix("refs/heads/"), branch.removeprefix("refs/heads/")
    return ref == branch or (not ref and bool(default_branch) and branch == default_branch)


def deployed(workload: Resource) -> str:
    """The commit the workload asks for, else the one it runs (its ref's tip when it was set up)."""
    compose = workload.spec.get("compose") or {}
    return str(compose.get("revision") or workload.status.get("deployedRevision") or "")


async def request_revision(client: ApiClient, urls: Iterable[str], branch: str, revision: str, *,
                           default_branch: str = "", namespaces: Sequence[str] | None = None) -> list[str]:
    """Set ``revision`` on every workload following ``urls`` at ``branch`` (in ``namespaces``, None: all);
    ``namespace/name`` of those changed. One already at that commit is left alone."""
    urls = list(urls)
    scopes: list[str | None] = list(namespaces) if namespaces is not None else [None]
    changed: list[str] = []
    for scope in scopes:
        workloads, _ = await client.list("Workload", scope)
        for workload in workloads:
            if not follows(workload, urls, branch, default_branch) or deployed(workload) == revision:
                continue
            meta = workload.metadata
            try:
                await client.patch("Workload", meta.name, {"spec": {"compose": {"revision": revision}}},
                                   namespace=meta.namespace)
            except NotFound:
                continue  # deleted meanwhile
            changed.append(f"{meta.namespace}/{meta.name}")
    return changed
