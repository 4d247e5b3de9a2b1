"""HMAC secret rotation with no failed agent operation.

A cluster (real etcd, an API server, the controllers, two agents as processes of their own serving HTTPS)
keeps applying, stopping and starting workloads, and reading their logs through the API, while an admin
rotates the agents' HMAC secret (``POST /hmac-keyring/rotate``). Signers (controllers, the API's logs
route) re-read the keyring every ``SIGNER_REFRESH`` seconds, agents every ``AGENT_REFRESH``: slower, so
that without the overlap window signers would switch before the agents know the new key. No agent refuses
a request (``persys_agent_signed_requests_total{result="refused"}`` stays 0, no logs call answers 401), both
keys are seen in use, and afterwards the old key is refused. The control, a rotation without an overlap
written straight to etcd, shows that this check does see the failures a missing overlap causes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from persys.agentclient import AgentClient
from persys.api import logs
from persys.api.app import PREFIX
from persys.client import ApiClient
from persys.controllers import ControllersConfig, build_manager
from persys.errors import PersysError, Unauthorized
from persys.security import pki
from persys.security.keyring import HmacKey, Keyring, read_keyring
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.hmackeys import HMAC_KEYRING_KEY
from persys.store.server import EtcdServer, free_port
from tests.support.cluster import ApiThread
from tests.support.eventually import eventually
from tests.support.hollow import FAST
from tests.support.workloads import SLEEP, manifest

PERSYS = str(Path(sys.executable).with_name("persys"))
SIGNER_REFRESH = 0.2
AGENT_REFRESH = 1.5
OVERLAP = 4.0  # > AGENT_REFRESH + SIGNER_REFRESH, with room for a loaded machine
NODES = ("rot-a", "rot-b")
WORKLOADS = 6


@dataclass
class Agents:
    """The agent processes, by node: (port, keyring file)."""

    home: HomePaths
    nodes: dict[str, tuple[int, Path]] = field(default_factory=dict)

    async def signed(self) -> dict[tuple[str, str, str], float]:
        """``persys_agent_signed_requests_total`` of every agent, by (node, key, result)."""
        context = ssl.create_default_context(cafile=str(self.home.ca_cert))
        counts: dict[tuple[str, str, str], float] = {}
        async with aiohttp.ClientSession() as session:
            for port, _ in self.nodes.values():
                async with session.get(f"https://127.0.0.1:{port}/metrics", ssl=context) as resp:
                    text = await resp.text()
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        if sample.name == "persys_agent_signed_requests_total":
                            labels = sample.labels
                            counts[(labels["node"], labels["key"], labels["result"])] = sample.value
        return counts

    async def refused(self) -> float:
        return sum(v for (_, _, result), v in (await self.signed()).items() if result == "refused")


@dataclass
class Cluster:
    api: ApiThread
    admin: ApiClient
    agents: Agents


def start_agent(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSYS_", "OTEL_"))}
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)


@pytest.fixture
async def cluster(etcd: Etcd, etcd_server: EtcdServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    paths = pki.init(tmp_path / "cluster")
    thread = ApiThread(etcd_server.url, paths.home, hmac_secret=read_keyring(paths.hmac_secret),
                       hmac_refresh_seconds=SIGNER_REFRESH, extra_routes=[logs.add_routes]).start()
    config = ControllersConfig.from_dict({**FAST, "hmac_refresh_seconds": SIGNER_REFRESH})
    manager = build_manager(etcd_server.url, home=paths.home, listen=None, config=config, identity="rotation")
    controllers = asyncio.create_task(manager.run(), name="manager-rotation")
    agents, processes = Agents(paths), []
    admin = ApiClient(thread.secure_url, ca=paths.ca_cert, cert=paths.cert("admin"), key=paths.key("admin"))
    try:
        for node in NODES:
            port, secret = free_port(), tmp_path / f"{node}.secret"  # each its own file, as on its own host
            shutil.copy(paths.hmac_secret, secret)
            agents.nodes[node] = (port, secret)
            processes.append(start_agent(
                [PERSYS, "--home", str(paths.home), "agent", "--runtime", "simulated", "--name", node,
                 "--listen", f"127.0.0.1:{port}", "--server", thread.secure_url, "--hmac-secret", str(secret),
                 "--hmac-refresh", str(AGENT_REFRESH), "--state-dir", str(tmp_path / node)], tmp_path / f"{node}.log"))
        for node in NODES:
            await eventually(lambda n=node: ready(admin, n), 30, f"node {node} Ready")  # type: ignore[misc]
        yield Cluster(thread, admin, agents)
    finally:
        await admin.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        manager.stop()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(10):
                await controllers
        thread.stop()


async def ready(admin: ApiClient, node: str) -> bool:
    try:
        found = await admin.get("Node", node, namespace="")
    except PersysError:
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in found.status.get("conditions", []))


async def churn(admin: ApiClient, stop: asyncio.Event, refusals: list[str]) -> None:
    """Apply, stop and start workloads and read their logs until ``stop``; a 401 from a logs call (an agent
    refusing the API's signature) goes into ``refusals``."""
    i = 0
    while not stop.is_set():
        name = f"churn-{i % WORKLOADS}"
        state = "Stopped" if (i // WORKLOADS) % 2 else "Running"
        await admin.apply_raw(manifest(name, command=SLEEP, desiredState=state))
        try:
            await admin.request("GET", f"{PREFIX}/namespaces/default/workloads/{name}/log")
        except Unauthorized as e:
            refusals.append(e.message)
        except PersysError:
            pass  # not scheduled or launched yet
        i += 1
        await asyncio.sleep(0.05)


async def converged(admin: ApiClient) -> bool:
    items, _ = await admin.list("Workload")
    return len(items) == WORKLOADS and all(
        w.status.get("phase") == ("Stopped" if w.spec.get("desiredState") == "Stopped" else "Running") for w in items)


@contextlib.asynccontextmanager
async def churning(admin: ApiClient) -> AsyncIterator[list[str]]:
    stop, refusals = asyncio.Event(), []
    task = asyncio.create_task(churn(admin, stop, refusals), name="churn")
    try:
        yield refusals
    finally:
        stop.set()
        await task


async def test_hmac_secret_rotation_with_no_failed_agent_operation(cluster: Cluster) -> None:
    admin, agents = cluster.admin, cluster.agents
    async with churning(admin) as refusals:
        await asyncio.sleep(1.0)
        _, answer, _ = await admin.request("POST", "/hmac-keyring/rotate", body={"overlapSeconds": OVERLAP})
        rotated = time.time()
        new = answer["keys"][-1]["id"]
        assert [(k["id"], k["state"]) for k in answer["keys"]] == [("default", "signing"), (new, "next")]
        while time.time() < rotated + 2 * OVERLAP + AGENT_REFRESH + 1:  # past all three phases
            assert await agents.refused() == 0, await agents.signed()
            await asyncio.sleep(0.2)
    assert refusals == []
    await eventually(lambda: converged(admin), 30, "every workload in its desired state")
    signed = await agents.signed()
    assert await agents.refused() == 0, signed
    for node in NODES:  # both keys signed calls that were accepted, on every node
        assert signed.get((node, "default", "accepted"), 0) > 0 and signed.get((node, new, "accepted"), 0) > 0, signed

    _, shown, _ = await admin.request("GET", "/hmac-keyring")
    assert [(k["id"], k["state"]) for k in shown["keys"]] == [("default", "expired"), (new, "signing")]
    old = read_keyring(cluster.api.home / "pki" / "agent-hmac.secret").keys[0]  # the home still holds the first
    for node, (port, secret) in agents.nodes.items():
        assert [k.id for k in read_keyring(secret).keys] == ["default", new]  # saved for the agent's next start
        client = AgentClient(f"https://127.0.0.1:{port}", old.id, old.secret, node=node, ca=agents.home.ca_cert)
        async with client:
            with pytest.raises(Unauthorized, match="expired key id 'default'"):
                await client.list()


async def test_without_the_overlap_a_rotation_fails_agent_calls(cluster: Cluster, etcd: Etcd) -> None:
    """The control: the same cluster and load, the keyring changed as a rotation without an overlap would
    (the new key signs at once, the old one is refused at once): agents refuse calls until they re-read it."""
    admin, agents = cluster.admin, cluster.agents
    async with churning(admin):
        await asyncio.sleep(1.0)
        for attempt in range(3):  # an agent that happens to re-read at once sees no gap: try again
            found = await etcd.get(HMAC_KEYRING_KEY)
            assert found is not None
            current, now = Keyring.parse(found.value.decode(), "etcd"), time.time()
            keys = tuple(HmacKey(k.id, k.secret, k.sign_from, now) for k in current.keys)
            await etcd.put(HMAC_KEYRING_KEY, Keyring((*keys, HmacKey(f"abrupt-{attempt}", b"f" * 64, now))).render()
                           .encode())
            with contextlib.suppress(AssertionError):
                await eventually(agents.refused, 2 * AGENT_REFRESH, "an agent refusing a call")
                break
    assert await agents.refused() > 0, await agents.signed()
