"""Probes against busybox httpd on the real dockerd, through the real controllers and etcd.

Each container serves a directory with httpd on a free 127.0.0.1 port (host network); a test makes
a probe's path fail or pass by deleting or creating its file with ``docker exec``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from controller_support import FAST, SECRET, HollowNode, eventually, start_hollow_node, workload

from persys.agentd.docker import DockerRuntime
from persys.controllers import ControllersConfig, build_manager
from persys.controllers.conditions import get_condition
from persys.controllers.dnsregistrar import dns_registrar
from persys.controllers.events import events_for
from persys.dns import zone_prefix
from persys.resources import REGISTRY, Resource
from persys.runtime import Manager
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer, free_port
from tests.support.gitrepo import git, new_repo

ZONE = "persys.local"
FAST_PROBE = {"periodSeconds": 1, "failureThreshold": 2, "timeoutSeconds": 1}


@pytest.fixture
async def docker_node(store: ObjectStore, tmp_path: Path) -> AsyncIterator[HollowNode]:
    """A node whose agent drives the real dockerd; its containers and compose projects are removed afterwards."""
    name = f"probes-{secrets.token_hex(4)}"
    node = await start_hollow_node(name, store, runtime_factory=lambda n, hub: DockerRuntime(
        n, hub, tmp_path / "state", stop_timeout=1))
    try:
        yield node
    finally:
        await node.stop()
        async with aiodocker.Docker() as docker:
            for container in await docker.containers.list(all=True, filters={"label": [f"persys.dev/node={name}"]}):
                await container.delete(force=True)


@pytest.fixture
async def cluster(etcd_server: EtcdServer) -> AsyncIterator[Manager]:
    """Every controller and the DNS registrar, with short timings."""
    config = ControllersConfig.from_dict({**FAST, "grace_seconds": 5.0})
    manager = build_manager(etcd_server.url, listen=None, config=config, hmac_secret=SECRET, identity="probes",
                            extra=[dns_registrar(ZONE)])
    task = asyncio.create_task(manager.run(), name="manager-probes")
    yield manager
    manager.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


def httpd(port: int, files: tuple[str, ...] = ("healthz",), delay: float = 0) -> list[str]:
    """busybox httpd serving /www on ``port``, with ``files`` created first (after ``delay`` seconds)."""
    touch = " && ".join(f"echo ok > /www/{f}" for f in files) or "true"
    return ["sh", "-c", f"sleep {delay:g}; mkdir -p /www && {touch} && exec httpd -f -p 127.0.0.1:{port} -h /www"]


async def in_container(node: HollowNode, name: str, *command: str, service: str = "") -> None:
    """Run ``command`` in the workload's container (or the named compose service's)."""
    async with aiodocker.Docker() as docker:
        labels = [f"persys.dev/node={node.name}", f"persys.dev/name={name}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        found = await docker.containers.list(filters={"label": labels})
        assert len(found) == 1, f"one running container for {name} {service}"
        execution = await found[0].exec(list(command))
        async with execution.start(detach=False) as stream:
            while await stream.read_out() is not None:
                pass


def status_of(store: ObjectStore, name: str, check: Callable[[Resource], bool]) -> Callable[[], Awaitable[Any]]:
    async def probe() -> Resource | None:
        obj = await store.get("Workload", "default", name)
        return obj if check(obj) else None
    return probe


def ready(obj: Resource) -> str:
    return str((get_condition(obj.status, "Ready") or {}).get("status"))


def ready_message(obj: Resource) -> str:
    return str((get_condition(obj.status, "Ready") or {}).get("message"))


async def test_a_path_that_starts_failing_gets_a_restart(store: ObjectStore, docker_node: HollowNode,
                                                         cluster: Manager) -> None:
    port = free_port()
    await store.create(workload("live", command=httpd(port), livenessProbe={
        "httpGet": {"path": "/healthz", "port": port}, "terminationGracePeriodSeconds": 0, **FAST_PROBE}))
    await eventually(status_of(store, "live", lambda o: o.status.get("phase") == "Running" and ready(o) == "True"),
                     timeout=30, what="Running and Ready")
    await in_container(docker_node, "live", "rm", "/www/healthz")

    obj = await store.get("Workload", "default", "live")
    events = await eventually(lambda: events_for(store, obj, "Unhealthy"), timeout=30, what="an Unhealthy Event")
    message = events[0].spec["message"]
    assert events[0].spec["type"] == "Warning"
    assert message.startswith("Liveness probe failed 2 times in a row: HTTP GET http://127.0.0.1:")
    assert "/healthz: 404" in message and len(message.encode()) <= 1000
    # the reconciler restarts it like any exit: counted, and the container serves /healthz again
    restarted = await eventually(status_of(store, "live", lambda o: int(o.status.get("restarts") or 0) >= 1
                                           and o.status.get("phase") == "Running" and ready(o) == "True"),
                                 timeout=30, what="restarted and Running")
    assert restarted.status["restarts"] == 1


async def test_a_slow_starter_is_protected_by_its_startup_probe(store: ObjectStore, docker_node: HollowNode,
                                                                cluster: Manager) -> None:
    """Both start slowly and have the same strict liveness probe; only the one without a startup probe dies."""
    guarded, bare = free_port(), free_port()

    def liveness(port: int) -> dict[str, Any]:
        return {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 1, "failureThreshold": 1,
                "terminationGracePeriodSeconds": 0}

    await store.create(workload("slow-guarded", command=httpd(guarded, delay=4), livenessProbe=liveness(guarded),
                                startupProbe={"httpGet": {"path": "/healthz", "port": guarded}, "periodSeconds": 1,
                                              "failureThreshold": 30}))
    await store.create(workload("slow-bare", command=httpd(bare, delay=4), livenessProbe=liveness(bare)))

    starting = await eventually(status_of(store, "slow-guarded", lambda o: o.status.get("phase") == "Running"
                                          and ready_message(o) == "Startup probe has not passed yet"),
                                timeout=30, what="slow-guarded running, its startup probe not passed yet")
    assert ready(starting) == "False"
    obj = await eventually(status_of(store, "slow-guarded", lambda o: ready(o) == "True"), timeout=30,
                           what="slow-guarded Ready once its startup probe passed")
    assert int(obj.status.get("restarts") or 0) == 0
    assert await events_for(store, obj, "Unhealthy") == []

    bare_obj = await store.get("Workload", "default", "slow-bare")
    events = await eventually(lambda: events_for(store, bare_obj, "Unhealthy"), timeout=30,
                              what="the unguarded slow starter killed by its liveness probe")
    assert "Liveness probe failed 1 times in a row" in events[0].spec["message"]


async def test_readiness_gates_the_dns_records(store: ObjectStore, etcd: Etcd, docker_node: HollowNode,
                                               cluster: Manager) -> None:
    port = free_port()
    await store.create(workload("gated", command=httpd(port), ports=[{"name": "http", "containerPort": port}],
                                service={"name": "gated", "port": "http"},
                                readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1,
                                                "failureThreshold": 1}))

    async def records() -> set[str]:
        kvs, _ = await etcd.range(zone_prefix(ZONE))
        return {kv.key for kv in kvs if "/gated/" in kv.key}

    obj = await eventually(status_of(store, "gated", lambda o: o.status.get("phase") == "Running"
                                     and "/ready: 404" in ready_message(o)), timeout=30,
                           what="Running, not Ready: /ready is missing")
    assert ready(obj) == "False" and ready_message(obj).startswith("Readiness probe failed: HTTP GET http://")
    assert await records() == set()

    await in_container(docker_node, "gated", "sh", "-c", "echo ok > /www/ready")
    await eventually(status_of(store, "gated", lambda o: ready(o) == "True"), timeout=20, what="Ready")
    await eventually(lambda: _nonempty(records()), timeout=20, what="A and SRV records")

    await in_container(docker_node, "gated", "rm", "/www/ready")
    await eventually(status_of(store, "gated", lambda o: ready(o) == "False"), timeout=20, what="not Ready again")
    await eventually(lambda: _empty(records()), timeout=20, what="records removed")
    obj = await store.get("Workload", "default", "gated")
    assert int(obj.status.get("restarts") or 0) == 0, "readiness never restarts a container"


async def _nonempty(found: Awaitable[set[str]]) -> bool:
    return len(await found) == 2


async def _empty(found: Awaitable[set[str]]) -> bool:
    return not await found


async def test_compose_services_have_their_own_probes(store: ObjectStore, docker_node: HollowNode,
                                                      cluster: Manager, tmp_path: Path) -> None:
    web = free_port()
    repo = new_repo(tmp_path / "app")
    (repo / "compose.yaml").write_text(
        "services:\n"
        f"  web:\n    image: persys/busybox:local\n    network_mode: host\n    init: true\n"
        f"    command: {httpd(web, files=())!r}\n"
        f"  side:\n    image: persys/busybox:local\n    network_mode: host\n    init: true\n"
        f"    command: ['sh', '-c', 'touch /tmp/alive && exec sleep 3600']\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "app")
    await store.create(REGISTRY.parse({"kind": "Workload", "metadata": {"name": "app"}, "spec": {
        "type": "compose", "compose": {
        "repo": f"file://{repo}", "ref": "main", "services": {
            "web": {"readinessProbe": {"httpGet": {"path": "/ready", "port": web}, "periodSeconds": 1,
                                       "failureThreshold": 1}},
            "side": {"livenessProbe": {"exec": {"command": ["test", "-f", "/tmp/alive"]},
                                       "terminationGracePeriodSeconds": 0, **FAST_PROBE}}}}}}))

    obj = await eventually(status_of(store, "app", lambda o: o.status.get("phase") == "Running"
                                     and "service web: Readiness probe failed" in ready_message(o)),
                           timeout=90, what="compose app Running, web not ready")
    assert ready(obj) == "False"
    await in_container(docker_node, "app", "sh", "-c", "echo ok > /www/ready", service="web")
    await eventually(status_of(store, "app", lambda o: ready(o) == "True"), timeout=30, what="Ready")

    await in_container(docker_node, "app", "rm", "/tmp/alive", service="side")
    assert any(e.spec["message"].startswith("service web: Readiness probe failed: HTTP GET")
               for e in await events_for(store, obj, "Unhealthy")), "a failed readiness probe is an Unhealthy Event too"

    async def liveness_events() -> list[str]:
        return [m for e in await events_for(store, obj, "Unhealthy") if "Liveness" in (m := e.spec["message"])]

    events = await eventually(liveness_events, timeout=30, what="side's Unhealthy Event")
    assert events[0].startswith("service side: Liveness probe failed 2 times in a row: exec ['test', '-f', "
                                "'/tmp/alive']: exit code 1")
    await eventually(status_of(store, "app", lambda o: int(o.status.get("restarts") or 0) >= 1
                               and o.status.get("phase") == "Running"), timeout=60, what="app restarted")
