"""A real ``etcd`` child process on a data dir: what ``persys up`` and the tests run.

``EtcdCluster`` runs three (or more) of them as one cluster on 127.0.0.1, each with its own
ports and data dir, optionally with TLS for clients and peers (client certificates required).

``start`` spawns it and waits until it answers. ``wait_exit`` waits, without a thread or a
poll loop (a pidfd), until it dies and reaps it, so that a supervisor learns of its death at
once and no zombie is left; ``terminate`` is the asynchronous ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from persys.errors import PersysError, StoreUnavailable
from persys.store.etcd import Etcd, EtcdTLS


def die_with_parent() -> list[str]:
    """The prefix that makes a command get SIGTERM when its parent dies, even by kill -9 (PR_SET_PDEATHSIG).

    ``setpriv`` (util-linux) sets it and execs the command, so that no Python code runs between fork
    and exec: a ``preexec_fn`` does, and in a process whose gRPC threads are busy the child then
    sometimes crashed with SIGSEGV before etcd even started.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """Starts and stops one single-member etcd on 127.0.0.1."""

    def __init__(self, data_dir: Path, client_port: int | None = None, peer_port: int | None = None,
                 name: str = "persys", *, tls: EtcdTLS | None = None, initial_cluster: str = "") -> None:
        """``tls``: this member's serving certificate and key (also its own client's, to see it answer),
        and the CA whose client certificates it accepts (and its peers'). ``initial_cluster``: the
        ``name=peer-url,…`` of a member of a cluster (default: this member alone)."""
        self.data_dir = Path(data_dir)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.name = name
        self.tls = tls
        self.initial_cluster = initial_cluster
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        """The running child's pid (None when none was started or it was reaped)."""
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    def command(self) -> list[str]:
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.exists(binary):
            raise PersysError("etcd is not installed: apt-get install etcd-server (or run `make setup`)")
        client, peer = self.url, self.peer_url
        return [*die_with_parent(), binary, "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial_cluster or f"{self.name}={peer}", "--log-level", "warn",
                "--quota-backend-bytes", str(4 * 1024**3), *self.tls_flags()]

    def tls_flags(self) -> list[str]:
        tls = self.tls
        if tls is None:
            return []
        files = [str(tls.cert), str(tls.key), str(tls.ca)]
        return ["--client-cert-auth", "--cert-file", files[0], "--key-file", files[1], "--trusted-ca-file", files[2],
                "--peer-client-cert-auth", "--peer-cert-file", files[0], "--peer-key-file", files[1],
                "--peer-trusted-ca-file", files[2]]

    def spawn(self) -> None:
        """Start the child. It gets SIGTERM when its parent dies, even by kill -9 (PR_SET_PDEATHSIG)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    async def start(self, timeout: float = 20.0) -> None:
        self.spawn()
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        client = Etcd(self.url, timeout=1.0, tls=self.tls)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise PersysError(f"etcd {exit_reason(self.process.returncode)}; its log ends: {self.log_tail()}")
                try:
                    await client.revision()
                    return
                except StoreUnavailable:
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        finally:
            await client.close()

    async def wait_exit(self) -> int:
        """Wait until the child exits; reap it and return its code (negative: killed by that signal)."""
        process = self.process
        if process is None:
            raise PersysError("etcd is not running")
        if process.poll() is None:
            await _exited(process.pid)
        return process.wait()  # reaps it: no zombie

    async def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM the child and wait for it (SIGKILL after ``timeout``), without blocking the loop."""
        process = self.process
        if process is None or process.poll() is not None:
            self.process = None
            return
        process.terminate()
        try:
            async with asyncio.timeout(timeout):
                await self.wait_exit()
        except TimeoutError:
            process.kill()
            await self.wait_exit()
        self.process = None

    def log_tail(self, lines: int = 3) -> str:
        """The last ``lines`` lines of etcd's log (its fatal error is the last one), joined with `` | ``."""
        if not self.log_path.exists():
            return "(no log)"
        with open(self.log_path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
            text = log.read().decode(errors="replace")
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class EtcdCluster:
    """``size`` etcd members on 127.0.0.1, one cluster, each with its own ports and data dir under ``base``.

    With ``tls`` (the CA, and a certificate and key that every member serves and peers with), clients
    and peers must present a certificate signed by that CA. A member stopped or killed is started
    again on its data dir by ``restart``.
    """

    def __init__(self, base: Path, size: int = 3, *, tls: EtcdTLS | None = None) -> None:
        self.members = [EtcdServer(Path(base) / f"etcd-{i}", name=f"etcd-{i}", tls=tls) for i in range(size)]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = initial
        self.tls = tls

    @property
    def endpoints(self) -> str:
        """Every member's client URL, comma-separated: what ``--etcd`` takes."""
        return ",".join(m.url for m in self.members)

    def client(self, timeout: float = 5.0) -> Etcd:
        return Etcd(self.endpoints, timeout=timeout, tls=self.tls)

    async def start(self, timeout: float = 30.0) -> None:
        """Start every member at once (each waits for the others to form the cluster), then until all answer."""
        for member in self.members:
            member.spawn()
        await asyncio.gather(*(m.wait_ready(timeout) for m in self.members))

    def member(self, url: str) -> EtcdServer:
        """The member whose client URL is ``url``."""
        return next(m for m in self.members if m.url == url.rstrip("/"))

    async def restart(self, member: EtcdServer, timeout: float = 30.0) -> None:
        """Start a stopped or killed member again on its data dir (it rejoins the cluster)."""
        if member.process is not None:
            await member.wait_exit()
        await member.start(timeout)

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def exit_reason(code: int) -> str:
    """``exited with code 1``, or ``killed by SIGKILL`` for a negative ``Popen.returncode``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


async def _exited(pid: int) -> None:
    """Wait until the process ``pid`` (a child not yet reaped) has exited: its pidfd turns readable."""
    loop = asyncio.get_running_loop()
    fd = os.pidfd_open(pid)
    exited = asyncio.Event()
    loop.add_reader(fd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)
