"""A real ``etcd`` child process on a data dir: what ``persys up`` and the tests run."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from persys.errors import PersysError, StoreUnavailable
from persys.store.etcd import Etcd


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """Starts and stops one single-member etcd on 127.0.0.1."""

    def __init__(self, data_dir: Path, client_port: int | None = None, peer_port: int | None = None,
                 name: str = "persys") -> None:
        self.data_dir = Path(data_dir)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def command(self) -> list[str]:
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.exists(binary):
            raise PersysError("etcd is not installed: apt-get install etcd-server (or run `make setup`)")
        client, peer = f"http://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{self.peer_port}"
        return [binary, "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}", "--log-level", "warn",
                "--quota-backend-bytes", str(4 * 1024**3)]

    def spawn(self) -> None:
        """Start the child. It gets SIGTERM when its parent dies, even by kill -9 (PR_SET_PDEATHSIG)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True, preexec_fn=_die_with_parent)

    async def start(self, timeout: float = 20.0) -> None:
        self.spawn()
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        client = Etcd(self.url, timeout=1.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
                    raise PersysError(f"etcd exited with {self.process.returncode}: {tail}")
                try:
                    await client.revision()
                    return
                except StoreUnavailable:
                    if loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        finally:
            await client.close()

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
