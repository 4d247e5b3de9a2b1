"""What every node's agent last said about each workload: the status controller's report cache.

One follower per Ready node reads the agent's event stream (``GET /v1/events``) and, as a
resync, polls ``GET /v1/workloads`` every ``poll_seconds``. Followers only fill the cache and
enqueue keys; the status controller's ``reconcile`` turns the latest report into status.
A burst of reports about one workload (created, running) is one queue entry, so one write.
A node's reports count only once its first poll has answered: before that, "not reported"
could mean "not asked yet", and no container is declared missing on that.

A poll's answer may be older than reports the stream delivered while it was on its way (a
container launched meanwhile is missing from it). The reports that arrive during a poll are
applied again on top of its answer: the stream is ordered and complete, so the last of them is
the newest word on its workload, and anything the poll saw that they did not say comes down the
stream later.

A broken stream means the agent may have restarted and lost what it ran (the hollow runtime
forgets everything; a restarted stream does not replay state): the follower polls again at once,
and after a failed poll again with back-off, rather than ``poll_seconds`` later. Without this, an
agent killed and restarted left its workloads Running in the API for up to 30 s (bench/chaos.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from persys.agentclient import AgentClient
from persys.errors import AgentError, NotLeader, StoreUnavailable
from persys.observability.logging import get_logger
from persys.runtime.backoff import Backoff

Report = dict[str, Any]
"""One agent report: ``uid``, ``name``, ``namespace``, ``state``, ``reason``, ``message``, times, …"""

log = get_logger("status")


class ReportCache:
    """Latest report per (node, uid); per node, whether a full poll has answered yet; and an index of the
    reports by workload name, so that finding every copy of one workload does not read every report."""

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Report]] = {}
        self._synced: set[str] = set()
        self._by_name: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (namespace, name) → {(node, uid)}

    def put(self, node: str, report: Report) -> None:
        reports = self._nodes.setdefault(node, {})
        uid = str(report.get("uid") or "")
        self._unindex(node, uid, reports.get(uid))
        reports[uid] = report
        self._index(node, uid, report)

    def replace(self, node: str, reports: Iterable[Report]) -> set[str]:
        """A full poll: the node runs exactly these; returns every uid that was or is reported."""
        before = self._nodes.get(node, {})
        for uid, report in before.items():
            self._unindex(node, uid, report)
        self._nodes[node] = {str(r.get("uid") or ""): r for r in reports}
        for uid, report in self._nodes[node].items():
            self._index(node, uid, report)
        self._synced.add(node)
        return set(before) | set(self._nodes[node])

    def drop(self, node: str) -> None:
        """The node is not followed any more: what it said may be stale."""
        for uid, report in self._nodes.pop(node, {}).items():
            self._unindex(node, uid, report)
        self._synced.discard(node)

    def synced(self, node: str) -> bool:
        return node in self._synced

    def get(self, node: str, uid: str) -> Report | None:
        return self._nodes.get(node, {}).get(uid)

    def named(self, namespace: str, name: str) -> list[tuple[str, Report]]:
        """Every (node, report) about a workload called ``namespace/name``, whatever its uid."""
        return [(node, self._nodes[node][uid]) for node, uid in self._by_name.get((namespace, name), ())]

    @staticmethod
    def _name(report: Report) -> tuple[str, str] | None:
        return (str(report.get("namespace") or "default"), str(report["name"])) if report.get("name") else None

    def _index(self, node: str, uid: str, report: Report) -> None:
        if (name := self._name(report)) is not None:
            self._by_name.setdefault(name, set()).add((node, uid))

    def _unindex(self, node: str, uid: str, report: Report | None) -> None:
        name = self._name(report) if report is not None else None
        if name is not None and (held := self._by_name.get(name)) is not None:
            held.discard((node, uid))
            if not held:
                del self._by_name[name]


class Follower:
    """Stream and poll of one node's agent; each report goes to the cache and ``notify``."""

    def __init__(self, node: str, client: Callable[[], AgentClient], cache: ReportCache,
                 notify: Callable[[str, Report], None], *, poll_seconds: float, backoff_max: float,
                 synced: Callable[[str], None] = lambda node: None) -> None:
        """``synced(node)`` is told when a poll first answers for a node the cache held nothing for."""
        self.node, self.client, self.cache, self.notify, self.synced = node, client, cache, notify, synced
        self.poll_seconds, self.backoff_max = poll_seconds, backoff_max
        self._during_poll: list[Report] | None = None  # stream reports since the poll on its way was sent
        self._resync = asyncio.Event()  # the stream broke: poll now

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._stream(), name=f"status-stream-{self.node}")
            group.create_task(self._poll(), name=f"status-poll-{self.node}")

    async def _stream(self) -> None:
        backoff = Backoff(0.5, self.backoff_max)
        while True:
            try:
                async for report in self.client().events():
                    backoff.reset()
                    self.cache.put(self.node, report)
                    if self._during_poll is not None:
                        self._during_poll.append(report)
                    self.notify(self.node, report)
            except (AgentError, StoreUnavailable) as e:
                log.info("agent event stream broke; reconnecting", node=self.node, error=str(e))
            except NotLeader:
                raise
            except Exception:  # one bad report must not blind the controller to a whole node
                log.exception("agent event stream failed; reconnecting", node=self.node)
            self._resync.set()
            await backoff.sleep()

    async def _poll(self) -> None:
        backoff = Backoff(0.5, self.backoff_max)
        while True:
            self._resync.clear()
            wait = self.poll_seconds if await self._poll_once() else backoff.next()
            if wait == self.poll_seconds:
                backoff.reset()
            with contextlib.suppress(TimeoutError):  # not wait_for: in 3.11 it can swallow a cancel
                async with asyncio.timeout(wait):
                    await self._resync.wait()

    async def _poll_once(self) -> bool:
        """One poll into the cache; whether the agent answered."""
        self._during_poll = []
        try:
            reports = await self.client().list()
            first = not self.cache.synced(self.node)
            uids = self.cache.replace(self.node, reports)
            for report in self._during_poll:  # newer than the poll's answer, or as new
                self.cache.put(self.node, report)
            for uid in uids:
                self.notify(self.node, self.cache.get(self.node, uid) or {"uid": uid})
            if first:  # what the node ran before the cache was dropped is not among uids: look at them all
                self.synced(self.node)
            return True
        except (AgentError, StoreUnavailable) as e:
            log.info("agent poll failed", node=self.node, error=str(e))
        except NotLeader:
            raise
        except Exception:
            log.exception("agent poll failed", node=self.node)
        finally:
            self._during_poll = None
        return False
