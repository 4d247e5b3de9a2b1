"""End to end: a second agent, with a home and a state directory of its own (no PKI, no config, no secret),
joins a `persys up` cluster over 127.0.0.1 with the join command `persys up` printed (its token and CA hash),
and runs a workload. A wrong CA hash
stops it before it sends anything. Real etcd, real dockerd, real processes."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import urllib.request
import uuid
from pathlib import Path

from persys.client import ApiClient
from persys.security.bootstrap import ca_hash
from persys.store.server import free_port
from tests.e2e.test_up import PERSYS, Cluster, containers, docker, until, up_process
from tests.support.workloads import SLEEP, manifest


def node_env() -> dict[str, str]:
    """The joining agent's environment: nothing of the cluster's (no PERSYS_HOME, no PERSYS_* settings)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PERSYS_", "OTEL_"))}


def join_args(cluster: Cluster, home: Path, state: Path, node: str, token: str, pinned: str, port: int) -> list[str]:
    return [PERSYS, "--home", str(home), "agent", "--join", f"https://127.0.0.1:{cluster.ports['api-port']}",
            "--token", token, "--ca-hash", pinned, "--name", node, "--listen", f"127.0.0.1:{port}",
            "--state-dir", str(state), "--join-timeout", "60"]


def run_join(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=node_env(), timeout=60)


def start_agent(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=node_env())


def join_command(cluster: Cluster) -> re.Match[str] | None:
    """The `persys agent --join` line `persys up` printed, once it has."""
    log = cluster.home / "up.log"
    return re.search(r"persys agent --join (?P<url>\S+) --token (?P<token>\S+) --ca-hash (?P<hash>\S+) --name NODE",
                     log.read_text(errors="replace") if log.exists() else "")


def token_authentications(cluster: Cluster) -> float:
    """How many bootstrap token authentications the API has counted (any result)."""
    url = f"http://127.0.0.1:{cluster.ports['http-port']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("persys_bootstrap_token_auth_total{"))


async def ready(client: ApiClient, node: str) -> bool:
    found = await client.get("Node", node, namespace="")
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in found.status.get("conditions", []))


async def running(client: ApiClient, name: str) -> bool:
    return (await client.get("Workload", name)).status.get("phase") == "Running"


async def test_a_second_agent_joins_with_a_token_and_runs_a_workload(tmp_path: Path) -> None:
    node = f"joined-{uuid.uuid4().hex[:6]}"
    home, state = tmp_path / "node-home", tmp_path / "node-state"
    home.mkdir()
    with up_process(tmp_path, "join") as cluster:
        cluster.start()
        await until("config.yaml", lambda: (cluster.home / "config.yaml").exists(), cluster)
        client = cluster.client()
        agent: subprocess.Popen[bytes] | None = None
        try:
            await until("API ready", lambda: client.list("Node", None), cluster)
            printed = await until("the join command persys up prints", lambda: join_command(cluster), cluster)
            assert isinstance(printed, re.Match)
            token, pinned = printed.group("token"), printed.group("hash")
            assert printed.group("url") == f"https://127.0.0.1:{cluster.ports['api-port']}"
            assert pinned == ca_hash((cluster.home / "pki" / "ca.crt").read_bytes())
            port = free_port()

            wrong = run_join(join_args(cluster, home, state, node, token, "sha256:" + "0" * 64, port))
            assert wrong.returncode == 1 and "does not match --ca-hash" in wrong.stderr, wrong.stderr
            assert not (state / "pki" / "node.key").exists()
            assert (await client.list("CertificateSigningRequest", None))[0] == []
            assert token_authentications(cluster) == 0  # the token never reached the server

            agent = start_agent(join_args(cluster, home, state, node, token, pinned, port), tmp_path / "agent.log")
            await until(f"node {node} Ready", lambda: ready(client, node), cluster, 90)
            pki = state / "pki"
            assert stat.S_IMODE((pki / "node.key").stat().st_mode) == 0o600
            assert (pki / "ca.crt").read_bytes() == (cluster.home / "pki" / "ca.crt").read_bytes()
            assert not (home / "pki").exists()  # everything the node holds came through the join
            [request] = (await client.list("CertificateSigningRequest", None))[0]
            assert request.spec["username"] == f"system:bootstrap:{token.partition('.')[0]}"
            assert request.status["certificate"] and request.status["conditions"][0]["reason"] == "AutoApproved"

            await client.apply_raw(manifest("on-joined", command=SLEEP, nodeName=node, network="host"))
            await until("the workload Running on the joined node", lambda: running(client, "on-joined"), cluster, 90)
            assert len(containers(node, "on-joined", all_states=False)) == 1
            assert (await client.get("Workload", "on-joined")).status["nodeName"] == node
        finally:
            await client.close()
            if agent is not None:
                agent.terminate()
                try:
                    agent.wait(30)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
            for cid in containers(node):
                docker("rm", "-f", cid)
