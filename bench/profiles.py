"""Sampling profiles of benchmark child processes with py-spy, summarised per function.

py-spy (``pip install py-spy`` into the venv) attaches to a running pid, so the processes
under test run unmodified. Each profile is reduced to the functions with the largest share
of non-idle samples: *self* (the function was on top of the stack) and *inclusive* (it was
anywhere on the stack; listed for Persys's own functions only). Without py-spy the benchmark runs
and reports no profile.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``reconcile (persys/controllers/scheduler.py:170)`` → ``reconcile (controllers/scheduler.py)``."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("/persys/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


def summarise(raw: str, top: int = 25) -> dict[str, Any]:
    """Sample count and the ``top`` functions by self and by inclusive samples, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";")
                  if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": name, "self_pct": round(100 * own[name] / total, 1),
                 "total_pct": round(100 * inclusive[name] / total, 1)} for name, _ in counter.most_common(top)]

    # inclusive: Persys's own functions below the entry points (the event loop and CLI frames hold ~100%)
    ours = Counter({name: n for name, n in inclusive.items()
                    if "persys/" in name and "persys/cli/" not in name and not name.startswith("<module>")})
    return {"samples": total, "self": rows(own) if total else [], "inclusive": rows(ours) if total else []}


class Profiler:
    """py-spy recorders attached to named pids, started and stopped together."""

    def __init__(self, tmp: Path, rate: int = 50) -> None:
        self.tmp, self.rate = tmp, rate
        self.targets: dict[str, int] = {}
        self.recorders: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def add(self, name: str, pid: int) -> None:
        self.targets[name] = pid

    def start(self) -> None:
        if PY_SPY is None:
            return
        for name, pid in self.targets.items():
            out = self.tmp / f"profile-{name}.txt"
            process = subprocess.Popen([PY_SPY, "record", "--pid", str(pid), "--format", "raw", "--rate",
                                        str(self.rate), "--nonblocking", "--output", str(out)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.recorders[name] = (process, out)

    def stop(self) -> dict[str, dict[str, Any]]:
        """Stop every recorder (SIGINT makes py-spy write its file) and summarise."""
        results: dict[str, dict[str, Any]] = {}
        for name, (process, out) in self.recorders.items():
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if out.exists():
                results[name] = summarise(out.read_text(errors="replace"))
                keep = Path(__file__).with_name(f"profile-{name}.txt")
                shutil.copyfile(out, keep)
        self.recorders.clear()
        return results

    def kill(self) -> None:
        """Stop recorders still running (after an error)."""
        for process, _ in self.recorders.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        self.recorders.clear()
