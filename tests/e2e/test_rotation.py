"""A `persys up` cluster on 20-second certificates: every component renews its own certificate through a
CSR at 2/3 of its lifetime, over and over, with no failed request and no restart. The API server and the
gateway serve their renewed certificates on the same listeners, the CLI renews its admin certificate as it
is used, the agent keeps heartbeating and running workloads, and the Deployment operator (the controllers'
certificate) still rolls out after the first certificates have long expired."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import urllib.request
from pathlib import Path

from cryptography import x509

from tests.e2e.test_up import Cluster, until, up_process

LIFETIME = 20
RUN_SECONDS = 50  # two and a half lifetimes: every certificate is renewed at least twice


def served_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def file_serial(cluster: Cluster, identity: str) -> int:
    path = cluster.home / "pki" / f"{identity}.crt"
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def workload(name: str) -> str:
    return json.dumps({"apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": {"name": name},
                       "spec": {"image": "persys/busybox:local", "command": ["sleep", "600"], "network": "host"}})


def phase(cluster: Cluster, kind: str, name: str) -> dict[str, object]:
    found: dict[str, object] = json.loads(cluster.persys("get", kind, name, "-o", "json").stdout)
    return found


def node_ready(cluster: Cluster) -> bool:
    node = phase(cluster, "node", cluster.node)
    conditions = (node.get("status") or {}).get("conditions") or []  # type: ignore[union-attr]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def refused(cluster: Cluster) -> list[str]:
    """The API's counters of requests refused for their certificate (401, 403), from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.ports['http-port']}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [line for line in text.splitlines()
            if line.startswith("persys_api_requests_total") and re.search(r'code="40[13]"', line)
            and not line.endswith(" 0.0")]


async def test_a_cluster_on_20_second_certificates_renews_everything_with_no_failed_request(tmp_path: Path) -> None:
    with up_process(tmp_path, "rotate") as cluster:
        cluster.extra = ("--certificate-seconds", str(LIFETIME))
        cluster.start()
        assert cluster.process is not None
        await until("the node Ready", lambda: node_ready(cluster), cluster, timeout=120)
        identities = ("server", "admin", "controller", "gateway", "gateway-server", f"node-{cluster.node}")
        first = {identity: file_serial(cluster, identity) for identity in identities}
        served = {"api": served_serial(cluster.ports["api-port"]),
                  "gateway": served_serial(cluster.ports["gateway-port"])}
        manifest = tmp_path / "w.json"
        manifest.write_text(workload("steady"))
        cluster.persys("apply", "-f", str(manifest))
        await until("steady Running", lambda: phase(cluster, "workload", "steady")["status"]["phase"] == "Running",
                    cluster)

        seen: dict[str, set[int]] = {identity: {serial} for identity, serial in first.items()}
        started = time.monotonic()
        while time.monotonic() - started < RUN_SECONDS:  # the CLI in use all along: it renews the admin one
            assert node_ready(cluster), cluster.log()
            assert phase(cluster, "workload", "steady")["status"]["phase"] == "Running"
            for identity in identities:
                seen[identity].add(file_serial(cluster, identity))
            await asyncio.sleep(2)

        assert cluster.process.poll() is None, cluster.log()  # never restarted
        renewals = {identity: len(serials) - 1 for identity, serials in seen.items()}
        assert all(count >= 2 for count in renewals.values()), renewals
        assert served_serial(cluster.ports["api-port"]) not in (served["api"], first["server"])
        assert served_serial(cluster.ports["gateway-port"]) != served["gateway"]
        assert served_serial(cluster.ports["api-port"]) == file_serial(cluster, "server")

        manifest.write_text(workload("after"))  # controllers, scheduler and agent, on renewed identities
        cluster.persys("apply", "-f", str(manifest))
        await until("after Running", lambda: phase(cluster, "workload", "after")["status"]["phase"] == "Running",
                    cluster)
        deployment = tmp_path / "d.json"
        deployment.write_text(json.dumps({
            "apiVersion": "persys.dev/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"image": "persys/busybox:local", "command": ["sleep", "600"],
                                           "network": "host"}}}}))
        cluster.persys("apply", "-f", str(deployment))
        await until("the Deployment available",
                    lambda: phase(cluster, "deployment", "web")["status"].get("availableReplicas") == 2, cluster)

        log = (cluster.home / "up.log").read_text(errors="replace")
        assert "certificate renewal failed" not in log, log[-4000:]
        assert "retrying" not in log, [line for line in log.splitlines() if "retrying" in line][:5]
        assert refused(cluster) == []
        assert log.count("certificate renewed") >= 2 * len(identities)
