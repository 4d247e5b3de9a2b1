"""End to end: `persys up` from an empty home, /healthz, the example manifests, healing, stop/start,
kill -9 and resume, delete, SIGTERM. Real etcd, real dockerd, everything on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from persys.client import ApiClient
from persys.resources import Resource
from persys.store.server import free_port

ROOT = Path(__file__).resolve().parents[2]
PERSYS = str(Path(sys.executable).with_name("persys"))


@dataclass
class Cluster:
    home: Path
    node: str
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()  # more flags for persys up (the dashboard test's stand-in GitHub)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PERSYS_HOME": str(self.home)}

    def start(self) -> None:
        args = [PERSYS, "up", "--home", str(self.home), "--node-name", self.node]
        for flag, port in self.ports.items():
            args += [f"--{flag}", str(port)]
        args += list(self.extra)
        log = open(self.home / "up.log", "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env())
        log.close()

    def persys(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([PERSYS, *args], capture_output=True, text=True, env=self.env(), timeout=240)
        if check and result.returncode != 0:
            raise AssertionError(f"persys {' '.join(args)} failed: {result.stdout}\n{result.stderr}")
        return result

    def client(self) -> ApiClient:
        config = yaml.safe_load((self.home / "config.yaml").read_text())
        return ApiClient(config["server"], ca=Path(config["ca"]), cert=Path(config["cert"]), key=Path(config["key"]))

    def log(self) -> str:
        path = self.home / "up.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60).stdout.strip()


def containers(node: str, name: str | None = None, all_states: bool = True) -> list[str]:
    filters = ["--filter", f"label=persys.dev/node={node}"]
    if name:
        filters += ["--filter", f"label=persys.dev/name={name}"]
    return docker("ps", "-q", *(["-a"] if all_states else []), *filters).split()


async def until(what: str, check: Callable[[], object], cluster: Cluster, timeout: float = 90.0) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - the cluster may still be starting
            last = e
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n--- persys up log ---\n{cluster.log()}")


async def workload(client: ApiClient, name: str) -> Resource:
    return await client.get("Workload", name)


PORTS = ("etcd-port", "etcd-peer-port", "http-port", "api-port", "controllers-port", "agent-port", "dns-port",
         "gateway-port")


@contextlib.contextmanager
def up_process(tmp_path: Path, prefix: str) -> Iterator[Cluster]:
    """A `persys up` in a temp home on free ports (the test starts it); stopped and its containers removed after."""
    c = Cluster(tmp_path / "home", f"{prefix}-{uuid.uuid4().hex[:6]}", {name: free_port() for name in PORTS})
    c.home.mkdir()
    try:
        yield c
    finally:
        if c.process and c.process.poll() is None:
            c.process.send_signal(signal.SIGTERM)
            try:
                c.process.wait(30)
            except subprocess.TimeoutExpired:
                c.process.kill()
                c.process.wait()
        for cid in containers(c.node):
            docker("rm", "-f", cid)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    subprocess.run([str(ROOT / "scripts" / "example-repos.sh")], check=True)
    with up_process(tmp_path, "e2e") as c:
        yield c


async def test_up_converges_heals_and_resumes(cluster: Cluster) -> None:
    cluster.start()
    await until("config.yaml", lambda: (cluster.home / "config.yaml").exists(), cluster)
    client = cluster.client()
    try:
        await until("API ready", lambda: client.list("Node", None), cluster)
        assert await until("/healthz", lambda: _healthz(cluster), cluster) == {"status": "ok"}
        assert await until("the gateway", lambda: _gateway(cluster), cluster) == (200, 401)
        converging = [str(ROOT / "manifests" / f) for f in ("web.yaml", "job.yaml", "compose.yaml")]
        applied = cluster.persys("apply", *[a for f in converging for a in ("-f", f)], "--wait", "--timeout", "150")
        for name in ("web", "hello-job", "hello-compose"):
            assert f"workload/{name} created" in applied.stdout
        applied = cluster.persys("apply", "-f", str(ROOT / "manifests"))
        assert "workload/crasher created" in applied.stdout and "workload/web unchanged" in applied.stdout

        async def phase(name: str, wanted: str) -> bool:
            return (await workload(client, name)).status.get("phase") == wanted

        await until("web Running", lambda: phase("web", "Running"), cluster)
        await until("hello-job Exited 0", lambda: _job_done(client), cluster)
        assert "done" in cluster.persys("logs", "hello-job", "--tail", "5").stdout
        await until("hello-compose Running", lambda: phase("hello-compose", "Running"), cluster, 120)
        await until("crasher restarted", lambda: _restarted(client, "crasher"), cluster, 120)

        web = await workload(client, "web")
        docker("kill", web.status["containerID"])
        await until("web healed", lambda: _healed(client, web), cluster)
        assert len(containers(cluster.node, "web")) == 1

        cluster.persys("stop", "web")
        await until("web Stopped", lambda: phase("web", "Stopped"), cluster)
        assert containers(cluster.node, "web", all_states=False) == []
        cluster.persys("start", "web")
        await until("web Running again", lambda: phase("web", "Running"), cluster)

        running = await workload(client, "web")
        started = docker("inspect", "-f", "{{.State.StartedAt}}", running.status["containerID"])
        assert cluster.process is not None
        cluster.process.send_signal(signal.SIGKILL)
        cluster.process.wait(30)
        await client.close()
        cluster.start()
        client = cluster.client()
        await until("API back", lambda: client.list("Workload", None), cluster)
        await until("web Running after restart", lambda: phase("web", "Running"), cluster)
        await asyncio.sleep(3)  # give a wrong relaunch the chance to happen before checking
        after = await workload(client, "web")
        assert after.status["containerID"] == running.status["containerID"]
        assert docker("inspect", "-f", "{{.State.StartedAt}}", after.status["containerID"]) == started
        assert len(containers(cluster.node, "web")) == 1

        cluster.persys("delete", "workload", "web")
        await until("web container gone", lambda: not containers(cluster.node, "web"), cluster)
        stats = json.loads(cluster.persys("stats", "-o", "json").stdout)
        assert stats["totalProcessed"] > 0
        cluster.process.send_signal(signal.SIGTERM)  # every part ends with the one supervisor, then etcd
        assert cluster.process.wait(60) == 0, cluster.log()
        assert "persys up stopped" in cluster.log()
    finally:
        await client.close()


def _healthz(cluster: Cluster) -> dict[str, object]:
    """The API's /healthz body (urlopen raises on a 503: a dead task in the process)."""
    url = f"http://127.0.0.1:{cluster.ports['http-port']}/healthz"
    with urllib.request.urlopen(url, timeout=5) as response:
        body: dict[str, object] = json.load(response)
        return body


def _gateway(cluster: Cluster) -> tuple[int, int]:
    """The gateway's /healthz code, and the code of an API path asked without a token (over its TLS)."""
    context = ssl.create_default_context(cafile=str(cluster.home / "pki" / "ca.crt"))
    codes = []
    for path in ("/healthz", "/apis/persys.dev/v1/namespaces/default/workloads"):
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{cluster.ports['gateway-port']}{path}", timeout=5,
                                        context=context) as response:
                codes.append(response.status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    return codes[0], codes[1]


async def _job_done(client: ApiClient) -> bool:
    job = await workload(client, "hello-job")
    return job.status.get("phase") == "Exited" and job.status.get("exitCode") == 0


async def _restarted(client: ApiClient, name: str) -> bool:
    return int((await workload(client, name)).status.get("restarts", 0)) >= 1


async def _healed(client: ApiClient, before: Resource) -> bool:
    now = await workload(client, before.metadata.name)
    return (now.status.get("phase") == "Running" and int(now.status.get("restarts", 0)) >= 1
            and now.status.get("startedAt") != before.status.get("startedAt"))
