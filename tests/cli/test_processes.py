"""The installed ``persys`` executable: ``persys server`` as a process, ``persys get -w`` streaming rows,
and one trace from a CLI command into the API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from persys.observability import tracing
from persys.security.paths import HomePaths
from persys.store.server import EtcdServer, free_port
from tests.support.cluster import RunningApi, cli

PERSYS = str(Path(sys.executable).parent / "persys")
WEB = "kind: Workload\nmetadata: {name: web}\nspec: {image: persys/busybox:local}\n"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PERSYS, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def server_process(etcd: object, etcd_server: EtcdServer, pki_home: HomePaths) -> Iterator[tuple[int, int]]:
    """``persys server`` on free ports, configured through PERSYS_* environment variables."""
    plain, secure = free_port(), free_port()
    env = {**os.environ, "PERSYS_HOME": str(pki_home.home), "PERSYS_ETCD": etcd_server.url,
           "PERSYS_LISTEN": f"127.0.0.1:{plain}", "PERSYS_SECURE_LISTEN": f"127.0.0.1:{secure}"}
    process = subprocess.Popen([PERSYS, "server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{plain}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("persys server did not become ready")
        yield plain, secure
    finally:
        process.terminate()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


def test_server_process_and_cli_process(server_process: tuple[int, int], pki_home: HomePaths,
                                        tmp_path: Path) -> None:
    _, secure = server_process
    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB)
    server = f"https://127.0.0.1:{secure}"
    done = run("--home", str(pki_home.home), "apply", "-f", str(manifest), "--server", server)
    assert (done.returncode, done.stdout.strip()) == (0, "workload/web created"), done.stderr
    done = run("get", "wl", "-o", "name", env={"PERSYS_HOME": str(pki_home.home), "PERSYS_SERVER": server})
    assert (done.returncode, done.stdout.strip()) == (0, "workload/web")


def test_get_watch_streams_rows(api: RunningApi, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(WEB)
    cli(api.home, "apply", "-f", str(manifest))
    watcher = subprocess.Popen([PERSYS, "--home", str(api.home), "get", "wl", "-w"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split()[0] == "NAME"
        assert watcher.stdout.readline().split()[:2] == ["web", "Pending"]
        time.sleep(0.5)  # let the watch start before the change it must report
        manifest.write_text(WEB.replace("persys/busybox:local", "other:1"))
        assert cli(api.home, "apply", "-f", str(manifest))[1].strip() == "workload/web configured"
        assert watcher.stdout.readline().split()[0] == "web"
        assert cli(api.home, "delete", "wl", "web")[0] == 0
        assert watcher.stdout.readline().split()[0] == "web"
    finally:
        watcher.terminate()
        watcher.wait(10)
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()


def test_cli_command_and_api_request_share_a_trace(api: RunningApi) -> None:
    exporter = InMemorySpanExporter()
    tracing.add_exporter(exporter)
    assert cli(api.home, "get", "workloads")[0] == 0
    spans = exporter.get_finished_spans()
    command = next(s for s in spans if s.name == "persys get")
    served = [s for s in spans if s.name.startswith("GET /apis/") and s.context.trace_id == command.context.trace_id]
    assert served and served[0].parent is not None and served[0].parent.span_id == command.context.span_id
