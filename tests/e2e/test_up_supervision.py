"""`persys up` supervises its etcd child: kill -9 it and it is reaped, named by /healthz and /readyz
(503), restarted with back-off and the cluster serves its data again; if it keeps dying, `up` exits 1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from persys.client import ApiClient
from tests.e2e.test_up import Cluster, docker, until, up_process
from tests.support.workloads import manifest


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with up_process(tmp_path, "sup") as c:
        yield c


def etcd_pid(cluster: Cluster) -> int | None:
    """The pid of `persys up`'s live etcd child (None while there is none)."""
    assert cluster.process is not None
    tasks = Path(f"/proc/{cluster.process.pid}/task")
    for task in tasks.iterdir() if tasks.exists() else ():
        with contextlib.suppress(OSError):
            for pid in (task / "children").read_text().split():
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if Path(cmdline[0].decode()).name == "etcd" and _state(int(pid)) != "Z":
                    return int(pid)
    return None


def _state(pid: int) -> str:
    """The process's state letter (Z: a zombie), "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def probe(cluster: Cluster, path: str) -> tuple[int, dict[str, object]]:
    """(status, JSON body) of the API's plain ``path``."""
    url = f"http://127.0.0.1:{cluster.ports['http-port']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def both(cluster: Cluster, status: int) -> list[dict[str, object]] | None:
    """The bodies of /healthz and /readyz when both answer ``status`` (else None)."""
    answers = [probe(cluster, path) for path in ("/healthz", "/readyz")]
    return [body for _, body in answers] if all(code == status for code, _ in answers) else None


def etcd_down(cluster: Cluster) -> list[dict[str, object]] | None:
    bodies = both(cluster, 503)
    return bodies if bodies and all(str(b["reason"]).startswith("etcd: not reachable") for b in bodies) else None


async def test_a_killed_etcd_is_reaped_named_restarted_and_the_data_survives(cluster: Cluster) -> None:
    cluster.start()
    await until("config.yaml", lambda: (cluster.home / "config.yaml").exists(), cluster)
    async with cluster.client() as client:
        await until("API ready", lambda: client.list("Node", None), cluster)
        await client.apply_raw(manifest("keeper", command=["sleep", "3600"]))
        await until("both probes 200", lambda: both(cluster, 200), cluster)
        old = etcd_pid(cluster)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        bodies = await until("/healthz and /readyz name etcd", lambda: etcd_down(cluster), cluster, timeout=10)
        assert isinstance(bodies, list) and any("restarting, attempt 1" in str(b["reason"]) for b in bodies), bodies
        new = await until("a new etcd", lambda: (pid := etcd_pid(cluster)) != old and pid, cluster)
        assert _state(old) == "", "the killed etcd was left a zombie"
        assert new != old
        assert await until("both probes 200 again", lambda: both(cluster, 200), cluster) == [{"status": "ok"}] * 2
        assert (await client.get("Workload", "keeper")).metadata.name == "keeper"
        await client.apply_raw(manifest("after", command=["sleep", "3600"]))
        await until("the new workload Running", lambda: _phase(client, "after", "Running"), cluster)
    cluster_id = (cluster.home / "pki" / "cluster-id").read_text().strip()
    labelled = docker("ps", "-q", "--filter", f"label=persys.dev/cluster={cluster_id}",
                      "--filter", f"label=persys.dev/node={cluster.node}").split()
    assert len(labelled) == 2, "both containers carry the cluster id"


async def _phase(client: ApiClient, name: str, phase: str) -> bool:
    return (await client.get("Workload", name)).status.get("phase") == phase


async def test_an_etcd_that_keeps_dying_makes_up_exit_non_zero(cluster: Cluster,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSYS_ETCD_MAX_RESTARTS", "1")  # the flag --etcd-max-restarts, read from the env
    cluster.start()
    await until("config.yaml", lambda: (cluster.home / "config.yaml").exists(), cluster)
    async with cluster.client() as client:
        await until("API ready", lambda: client.list("Node", None), cluster)
    pid = etcd_pid(cluster)
    assert pid is not None and cluster.process is not None
    with socket.socket() as squatter:  # etcd cannot come back: its client port is taken
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        os.kill(pid, signal.SIGKILL)
        await until("the etcd port", lambda: _bind(squatter, cluster.ports["etcd-port"]), cluster, timeout=10)
        await until("persys up exits", lambda: cluster.process and cluster.process.poll() is not None, cluster, 60)
    assert cluster.process.returncode == 1, cluster.log()
    assert "etcd died 2 times within 120s" in (cluster.home / "up.log").read_text(errors="replace")  # anywhere:
    # the shutdown that follows logs on, and under load may push it out of log()'s last 4,000 characters
    assert etcd_pid(cluster) is None


def _bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    sock.listen()
    return True
