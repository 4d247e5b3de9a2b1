"""One probe, once, and what a run of them means: the checks and the verdict table.

The checks are Kubernetes': ``httpGet`` passes on a status 200-399, ``tcpSocket`` when a
connection opens, ``exec`` when the command exits 0, each within ``timeoutSeconds``.
Containers use the host network, so HTTP and TCP go to 127.0.0.1; exec runs in the container
through Docker (the caller supplies it). ``Verdict`` turns a sequence of outcomes into what
the prober acts on, as a pure state machine tested row by row
(``tests/agentd/test_probe_verdicts.py``):

| probe | before any outcome | passing after | failing after |
|---|---|---|---|
| startup | not passed | 1 success (then it stops) | failureThreshold failures in a row: restart |
| liveness | alive | - | failureThreshold failures in a row: restart |
| readiness | not ready | successThreshold successes in a row | failureThreshold failures in a row |
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from persys.resources.probes import Probe

MAX_OUTPUT = 1000  # bytes of probe output kept (and carried by an Unhealthy Event)

Exec = Callable[[tuple[str, ...], float], Awaitable[tuple[int, str]]]
"""Runs a command in the probed container: (command, timeout) → (exit code, output)."""


@dataclass(frozen=True)
class Outcome:
    """One run of a probe: did it pass, and what it said."""

    ok: bool
    output: str


def clip(text: str, limit: int = MAX_OUTPUT) -> str:
    """``text`` within ``limit`` bytes of UTF-8 (an ellipsis marks a cut)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - 3].decode(errors="ignore") + "…"


async def check(probe: Probe, http: aiohttp.ClientSession, run: Exec) -> Outcome:
    """Run ``probe`` once; never raises for what the probed container does (that is an outcome)."""
    what = probe.describe()
    try:
        if probe.handler == "httpGet":
            return await _http(probe, http, what)
        if probe.handler == "tcpSocket":
            return await _tcp(probe, what)
        async with asyncio.timeout(probe.timeout + 1):  # asyncio.timeout, not wait_for: it never swallows a cancel
            code, output = await run(probe.command, probe.timeout)
        return Outcome(code == 0, clip(f"{what}: exit code {code}" + (f": {output.strip()}" if output.strip() else "")))
    except TimeoutError:
        return Outcome(False, f"{what}: timed out after {probe.timeout:g}s")
    except (ConnectionRefusedError, aiohttp.ClientConnectorError) as e:
        refused = isinstance(e, ConnectionRefusedError) or isinstance(e.os_error, ConnectionRefusedError)
        return Outcome(False, clip(f"{what}: " + ("connection refused" if refused else str(e))))
    except (OSError, aiohttp.ClientError) as e:
        return Outcome(False, clip(f"{what}: {e or type(e).__name__}"))


async def _http(probe: Probe, http: aiohttp.ClientSession, what: str) -> Outcome:
    url = f"{probe.scheme.lower()}://127.0.0.1:{probe.port}{probe.path}"
    verify: ssl.SSLContext | bool = False if probe.scheme == "HTTPS" else True  # Kubernetes does not verify
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=probe.timeout), ssl=verify,
                        allow_redirects=False, headers={"User-Agent": "persys-probe/1"}) as response:
        body = (await response.content.read(MAX_OUTPUT)).decode(errors="replace").strip()
    ok = 200 <= response.status < 400
    text = f"{what}: {response.status} {response.reason or ''}".rstrip()
    return Outcome(ok, clip(text + (f": {body}" if body and not ok else "")))


async def _tcp(probe: Probe, what: str) -> Outcome:
    async with asyncio.timeout(probe.timeout):
        _, writer = await asyncio.open_connection("127.0.0.1", probe.port)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return Outcome(True, f"{what}: connected")


class Verdict:
    """Consecutive outcomes of one probe → its verdict (see the table in the module docstring)."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.successes = 0
        self.failures = 0
        self.passing = probe.kind == "livenessProbe"  # alive until proven dead; not ready/started until shown

    def record(self, ok: bool) -> bool:
        """Count one outcome; returns the verdict after it."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            needed = self.probe.success_threshold if self.probe.kind == "readinessProbe" else 1
            if self.successes >= needed:
                self.passing = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.probe.failure_threshold:
                self.passing = False
        return self.passing

    @property
    def gave_up(self) -> bool:
        """A startup or liveness probe that failed its threshold: the container must restart."""
        return self.probe.kind != "readinessProbe" and self.failures >= self.probe.failure_threshold
