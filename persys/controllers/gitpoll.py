"""The git poller: catches pushes a webhook missed by asking each followed branch for its tip.

Every ``git_poll_seconds`` (180 by default; 0 turns it off) the poller runs ``git ls-remote`` once
per repository, branch, namespace and ``authSecret`` that compose workloads follow, with that
Secret's token, and keeps the tips it learnt. Each follower
is then reconciled like any key: when it has been deployed (it asks for a commit, or reports the
one it runs) and that commit is not the tip, its ``spec.compose.revision`` becomes the tip, a
fenced write, and the reconciler redeploys it. A webhook and the poll set the same tip, so they
never fight; a workload not deployed yet is left to its first deployment. A repository that
cannot be reached is logged and asked again after its own back-off, never holding up the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from persys.client.revisions import deployed, normal_url
from persys.errors import NotFound, PersysError
from persys.resources.kinds import SECRET, WORKLOAD
from persys.resources.model import ObjectKey, Resource
from persys.runtime.backoff import Backoff
from persys.runtime.controller import Controller, Result
from persys.runtime.informer import IndexFunc
from persys.security.git import Git

BY_SOURCE = "gitpoll/source"

Source = tuple[str, str]  # (normalised repository URL, branch; "" for the default branch)


def source_of(workload: Resource) -> list[str]:
    """Index function: the repository and branch a compose workload follows, with the namespace and
    Secret whose token reads it (one namespace's token never asks for another's workloads)."""
    compose = workload.spec.get("compose") or {}
    if workload.spec.get("type") != "compose" or not compose.get("repo"):
        return []
    return [f"{normal_url(str(compose['repo']))}#{compose.get('ref') or ''}#{workload.metadata.namespace}"
            f"#{compose.get('authSecret') or ''}"]


@dataclass
class _Repo:
    tip: str = ""
    retry: Backoff | None = None
    next_try: float = 0.0


class GitPoller(Controller):
    """Sets ``spec.compose.revision`` to the tip of the followed branch when a push was missed."""

    kind = WORKLOAD.kind
    name = "git-poller"
    workers = 2

    def __init__(self, period: float, askpass_dir: Path) -> None:
        super().__init__()
        self.period = period
        self.git = Git(askpass_dir, timeout=60.0)
        self._repos: dict[str, _Repo] = {}

    def indexes(self) -> Mapping[str, IndexFunc]:
        return {BY_SOURCE: source_of}

    def enqueue_handler(self, event_type: str, obj: Resource, old: Resource | None) -> None:
        """Only what the poll found changes a decision: keys are enqueued by the poll."""

    def runnables(self) -> list[tuple[str, object]]:
        return [("poll", self._poll_forever())] if self.period > 0 else []

    async def _poll_forever(self) -> None:
        while True:
            await self.poll()
            await self.clock.sleep(self.period)

    async def poll(self) -> None:
        """Ask every followed branch for its tip once (those backing off wait), and enqueue its followers."""
        sources = {s for w in self.cache.objects() for s in source_of(w)}
        for source in sorted(sources):
            followers = self.cache.by_index(BY_SOURCE, source)
            repo = self._repos.setdefault(source, _Repo())
            if not followers or self.clock.now() < repo.next_try:
                continue
            try:
                repo.tip = await self._tip(followers[0])
                repo.retry, repo.next_try = None, 0.0
            except (PersysError, OSError) as e:
                repo.retry = repo.retry or Backoff(self.period, self.period * 8, clock=self.clock)
                delay = repo.retry.next()
                repo.next_try = self.clock.now() + delay
                self.log.warning("cannot ask for the tip; asking again later", source=source, error=str(e),
                                 retry_in=round(delay))
                continue
            for workload in followers:
                self.queue.add(workload.key)
        for gone in set(self._repos) - sources:
            del self._repos[gone]

    async def _tip(self, workload: Resource) -> str:
        compose = workload.spec["compose"]
        auth: dict[str, str] = {}
        if compose.get("authSecret"):
            try:
                auth = dict((await self.store.get(SECRET.kind, workload.metadata.namespace,
                                                  compose["authSecret"])).spec)
            except NotFound:
                pass  # the reconciler reports the missing Secret; ls-remote may still work without it
        return await self.git.tip(str(compose["repo"]), str(compose.get("ref") or ""),
                                  username=str(auth.get("username") or ""), token=str(auth.get("token") or ""))

    async def reconcile(self, key: ObjectKey) -> Result:
        workload = self.cache.get(key)
        if workload is None or workload.metadata.deletionTimestamp:
            return Result()
        sources = source_of(workload)
        repo = self._repos.get(sources[0]) if sources else None
        current = deployed(workload)
        if repo is None or not repo.tip or not current or current == repo.tip:
            return Result()
        tip = repo.tip
        self.log.info("new commit on the followed branch", workload=str(key), revision=tip, was=current)

        def pin(obj: Resource) -> None:
            obj.spec["compose"]["revision"] = tip

        try:
            await self.store.modify(WORKLOAD.kind, key.namespace, key.name, pin, fence=self.fence, base=workload)
        except NotFound:
            pass
        return Result()
