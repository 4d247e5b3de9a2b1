"""A private dockerd for tests that restart Docker: its own data root, exec root, pidfile and socket.

The machine's shared dockerd is never touched. The daemon runs with ``--live-restore``, as a
production host that must keep its containers through a Docker upgrade would, and with the same
``--bridge=none --iptables=false`` as the shared one. Images come from the shared daemon
(``docker save | docker load``), since nothing can be pulled here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from persys.store.server import die_with_parent


class PrivateDockerd:
    def __init__(self) -> None:
        # a short path: containerd's sockets live under the exec root, and unix socket paths are short
        self.root = Path(tempfile.mkdtemp(prefix="pd-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> bytes:
        return subprocess.run(["docker", "-H", self.url, *args], input=input, capture_output=True,
                              check=True, timeout=timeout).stdout

    def start(self) -> None:
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115  # held by the daemon for its life
        self.process = subprocess.Popen(
            [*die_with_parent(), "dockerd", "--data-root", str(self.root / "data"), "--exec-root",
             str(self.root / "x"), "--pidfile", str(self.root / "dockerd.pid"), "--host", self.url,
             "--bridge=none", "--iptables=false", "--live-restore"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"private dockerd exited: {self.log_tail()}")
            try:
                self.docker("info", timeout=5)
                return
            except subprocess.SubprocessError:
                time.sleep(0.3)
        raise RuntimeError(f"private dockerd did not answer in 60 s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM and wait: with live restore, the containers keep running."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def load_image(self, image: str) -> None:
        saved = subprocess.run(["docker", "save", image], capture_output=True, check=True, timeout=120).stdout
        self.docker("load", input=saved, timeout=120)

    def destroy(self) -> None:
        """Remove every container, stop the daemon (and its containerd), delete its directories."""
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq").split()
            if ids:
                self.docker("rm", "-f", *(i.decode() for i in ids))
        self.stop()
        for mount in self.mounts():  # dockerd leaves its data root bind-mounted and its netns
            subprocess.run(["umount", "-l", mount], capture_output=True, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def mounts(self) -> list[str]:
        """Mount points under the daemon's root, deepest first."""
        points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        return sorted((p for p in points if p.startswith(f"{self.root}/")), key=len, reverse=True)

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "dockerd.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
