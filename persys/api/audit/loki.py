"""Audit events pushed to Loki (``POST /loki/api/v1/push``, JSON), batched, never in a request's way.

``offer`` puts an event on a bounded queue and returns; a full queue drops the event, counted
in ``persys_audit_events_dropped_total{sink="loki"}``. One pusher task collects a batch (up to
``batch_size`` events or ``batch_bytes`` of lines, or what came within ``batch_wait`` seconds of
the first) and sends it as Loki's JSON push body::

    {"streams": [{"stream": {"job": "persys-audit", "cluster": "…", "class": "write"},
                  "values": [["<unix ns, a string>", "<the event's JSON line>"], …]}]}

Labels are few and of low cardinality (job, cluster, read or write); users and object names stay
in the line, where LogQL's ``| json`` finds them. A 429, a 5xx or a connection failure is retried
with ``Backoff`` (up to ``max_retries`` times, then the batch is dropped, counted); any other 4xx
(a 400: Loki refuses the batch itself) is not retried and is dropped, counted, with Loki's reason.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp

from persys.api.audit.drops import Drops
from persys.observability.logging import get_logger
from persys.runtime.backoff import Backoff

PUSH_PATH = "/loki/api/v1/push"

log = get_logger("audit")


@dataclass(frozen=True)
class LokiSettings:
    """Where and how audit events go to Loki."""

    url: str  # Loki's base URL (http://loki:3100) or its push URL
    batch_size: int = 500
    batch_bytes: int = 1024 * 1024
    batch_wait: float = 1.0
    queue_size: int = 10_000
    timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_retries: int = 10
    labels: dict[str, str] = field(default_factory=lambda: {"job": "persys-audit"})

    @property
    def push_url(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith(PUSH_PATH) else base + PUSH_PATH


@dataclass(frozen=True)
class Entry:
    """One event for Loki: its time in unix nanoseconds, its label class, its JSON line."""

    ns: int
    cls: str
    line: str


def push_body(entries: list[Entry], labels: dict[str, str]) -> dict[str, object]:
    """Loki's JSON push body: one stream per label set, values in time order."""
    streams: dict[str, list[Entry]] = {}
    for entry in entries:
        streams.setdefault(entry.cls, []).append(entry)
    body: list[dict[str, object]] = []
    for cls, group in streams.items():
        stream: dict[str, str] = {**labels, "class": cls}
        body.append({"stream": stream, "values": [[str(e.ns), e.line] for e in sorted(group, key=lambda e: e.ns)]})
    return {"streams": body}

class LokiSink:
    """Pushes queued audit events to Loki in batches, with back-off; drops (counted) rather than block."""

    name = "audit/loki"

    def __init__(self, settings: LokiSettings) -> None:
        self.settings = settings
        self.labels = dict(settings.labels)
        self.queue: asyncio.Queue[Entry] = asyncio.Queue(maxsize=settings.queue_size)
        self.drops = Drops("loki")

    def offer(self, entry: Entry) -> None:
        """Queue one event; never waits (a full queue drops it, counted)."""
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.drops.drop("queue_full", detail=f"more than {self.queue.maxsize} events waiting for Loki")

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        session = aiohttp.ClientSession(timeout=timeout)
        batch: list[Entry] = []
        try:
            while True:
                batch = await self._collect()
                await self._push(session, batch)
                batch = []
        finally:
            left = len(batch) + self.queue.qsize()
            if left:
                self.drops.drop("shutdown", left, detail="the API server stopped before they were pushed")
            await session.close()

    async def _collect(self) -> list[Entry]:
        """A batch: the next event, then more until the batch is full or ``batch_wait`` has passed."""
        settings = self.settings
        batch = [await self.queue.get()]
        size = len(batch[0].line)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.batch_wait
        while len(batch) < settings.batch_size and size < settings.batch_bytes:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):  # not wait_for: in 3.11 it can swallow a cancel
                    entry = await self.queue.get()
            except TimeoutError:
                break
            batch.append(entry)
            size += len(entry.line)
        return batch

    async def _push(self, session: aiohttp.ClientSession, batch: list[Entry]) -> None:
        """Send ``batch`` until Loki takes it, refuses it (4xx but 429) or ``max_retries`` is exceeded."""
        body = json.dumps(push_body(batch, self.labels), separators=(",", ":"))
        retry = Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        while True:
            code, reason = await self._send(session, body)
            if 200 <= code < 300:
                self.drops.recorded(len(batch))
                return
            if 400 <= code < 500 and code != 429:
                self.drops.drop("rejected", len(batch), detail=f"Loki answered {code}: {reason}")
                return
            if retry.failures >= self.settings.max_retries:
                self.drops.drop("retries_exhausted", len(batch), detail=f"last answer: {reason}")
                return
            delay = await retry.sleep()
            log.info("audit push to Loki failed; retrying", code=code or None, reason=reason, retry_in=round(delay, 3))

    async def _send(self, session: aiohttp.ClientSession, body: str) -> tuple[int, str]:
        """(HTTP code, Loki's reason); code 0 when Loki could not be reached."""
        try:
            async with session.post(self.settings.push_url, data=body,
                                    headers={"Content-Type": "application/json"}) as response:
                text = await response.text(errors="replace")
                return response.status, text.strip()[:300] or response.reason or ""
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return 0, f"{type(e).__name__}: {e}"
