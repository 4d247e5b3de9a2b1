"""The audit trail on disk: JSON lines in ``audit.log``, rotated by size to ``audit.log.1`` … ``.N``.

Requests never wait for the disk. ``offer`` puts the event's line on a bounded queue and
returns; a full queue drops the event and counts it. One writer task takes the lines in
batches and appends them in a worker thread (``asyncio.to_thread``), so the event loop never
blocks on a slow disk. Before a line would take ``audit.log`` past ``max_bytes`` the file is
rotated: ``audit.log.N`` is removed, each ``.i`` becomes ``.i+1`` and ``audit.log`` becomes
``.1``; at most ``max_files`` rotated files are kept. Files are created readable by their
owner only: the trail says who did what.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

from persys.api.audit.drops import Drops
from persys.observability.logging import get_logger

FILE_NAME = "audit.log"
BATCH = 1000  # lines per write

log = get_logger("audit")


class FileSink:
    """Appends event lines to ``directory/audit.log`` from a bounded queue, rotating by size."""

    name = "audit/file"

    def __init__(self, directory: Path, *, max_bytes: int, max_files: int, queue_size: int) -> None:
        self.directory, self.max_bytes, self.max_files = directory, max_bytes, max_files
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.drops = Drops("file")
        # one writer at a time: a batch still being written in its thread when the task is cancelled
        # finishes before the last lines are written on the way out
        self._writing = threading.Lock()

    @property
    def current(self) -> Path:
        return self.directory / FILE_NAME

    def files(self) -> list[Path]:
        """The trail's files that exist, oldest first (``audit.log`` last)."""
        rotated = [self.directory / f"{FILE_NAME}.{i}" for i in range(self.max_files, 0, -1)]
        return [path for path in [*rotated, self.current] if path.exists()]

    def offer(self, line: str) -> None:
        """Queue one event's JSON line; never waits (a full queue drops it, counted)."""
        try:
            self.queue.put_nowait(line)
        except asyncio.QueueFull:
            self.drops.drop("queue_full", detail=f"more than {self.queue.maxsize} events waiting for the disk")

    async def drained(self, timeout: float) -> bool:
        """Wait until every event offered so far is written (False if that took longer than ``timeout``)."""
        try:
            async with asyncio.timeout(timeout):
                await self.queue.join()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """The writer: batches from the queue, written in a thread; what is left is written on the way out."""
        try:
            while True:
                batch = [await self.queue.get()]
                while len(batch) < BATCH and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                try:
                    await asyncio.to_thread(self._write, batch)
                finally:
                    for _ in batch:
                        self.queue.task_done()
        finally:
            left: list[str] = []
            while not self.queue.empty():
                left.append(self.queue.get_nowait())
                self.queue.task_done()
            if left:
                self._write(left)  # at shutdown: a short blocking write beats losing the last events

    def _write(self, lines: list[str]) -> None:
        with self._writing:
            self._append(lines)

    def _append(self, lines: list[str]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            size = self.current.stat().st_size if self.current.exists() else 0
            out, chunk = _Appender(self.current), bytearray()
            try:
                for line in lines:
                    data = (line + "\n").encode()
                    if size and size + len(data) > self.max_bytes:
                        out.write(bytes(chunk))
                        out.close()
                        self._rotate()
                        out, chunk, size = _Appender(self.current), bytearray(), 0
                    chunk += data
                    size += len(data)
                out.write(bytes(chunk))
            finally:
                out.close()
        except OSError as e:
            self.drops.drop("write_error", len(lines), detail=f"{self.current}: {e.strerror or e}")
            return
        self.drops.recorded(len(lines))

    def _rotate(self) -> None:
        if self.max_files == 0:
            self.current.unlink(missing_ok=True)
            return
        (self.directory / f"{FILE_NAME}.{self.max_files}").unlink(missing_ok=True)
        for i in range(self.max_files - 1, 0, -1):
            older = self.directory / f"{FILE_NAME}.{i}"
            if older.exists():
                older.replace(self.directory / f"{FILE_NAME}.{i + 1}")
        self.current.replace(self.directory / f"{FILE_NAME}.1")


class _Appender:
    """``audit.log`` opened for appending, created with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
