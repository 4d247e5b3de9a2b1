"""Replacing the cluster CA on a running `persys up`, once, as README's procedure says: start (a bundle trusts
both CAs), switch (the new one signs; every component renews onto it), finish (only the new one), restart.
The cluster keeps working all along; afterwards a certificate of the old CA is refused."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from persys.client import ApiClient
from persys.errors import PersysError
from tests.e2e.test_rotation import file_serial, node_ready, phase, refused, workload
from tests.e2e.test_up import Cluster, until, up_process

LIFETIME = 20  # short certificates, so that every component renews onto the new CA within the test


def issuer(cluster: Cluster, identity: str) -> str:
    cert = x509.load_pem_x509_certificate((cluster.home / "pki" / f"{identity}.crt").read_bytes())
    return cert.issuer.rfc4514_string()


def signing_ca(cluster: Cluster) -> str:
    return x509.load_pem_x509_certificate((cluster.home / "pki" / "ca.crt").read_bytes()).subject.rfc4514_string()


async def running(cluster: Cluster, name: str, manifest: Path) -> None:
    await asyncio.to_thread(manifest.write_text, workload(name))
    cluster.persys("apply", "-f", str(manifest))
    await until(f"{name} Running", lambda: phase(cluster, "workload", name)["status"]["phase"] == "Running",
                cluster)


async def test_the_cluster_ca_is_replaced_without_a_failed_request(tmp_path: Path) -> None:
    with up_process(tmp_path, "ca") as cluster:
        cluster.extra = ("--certificate-seconds", str(LIFETIME))
        cluster.start()
        await until("the node Ready", lambda: node_ready(cluster), cluster, timeout=120)
        manifest = tmp_path / "w.json"
        await running(cluster, "before", manifest)
        old_ca, pki = signing_ca(cluster), cluster.home / "pki"
        kept = tmp_path / "old-admin"
        kept.mkdir()
        for name in ("admin.crt", "admin.key", "ca.crt"):
            shutil.copy(pki / name, kept / name)
        identities = ("server", "admin", "controller", "gateway", "gateway-server", f"node-{cluster.node}")

        out = cluster.persys("pki", "rotate-ca", "start").stdout
        assert "switch" in out and len(x509.load_pem_x509_certificates((pki / "ca.crt").read_bytes())) == 2
        assert "rotate-ca switch" in cluster.persys("pki", "rotate-ca", "status").stdout
        await asyncio.sleep(LIFETIME / 4)  # every component re-reads the bundle at least every tenth of a lifetime
        cluster.persys("pki", "rotate-ca", "switch")
        new_ca = signing_ca(cluster)
        assert new_ca != old_ca
        def moved() -> bool:
            cluster.persys("get", "nodes")  # the CLI renews its admin certificate as it is used
            return all(issuer(cluster, identity) == new_ca for identity in identities)

        await until("every certificate issued by the new CA", moved, cluster, timeout=60)
        assert node_ready(cluster) and phase(cluster, "workload", "before")["status"]["phase"] == "Running"
        await running(cluster, "during", manifest)
        again = cluster.persys("pki", "rotate-ca", "switch", check=False)
        assert again.returncode == 1 and "no CA rotation has started" in again.stderr

        cluster.persys("pki", "rotate-ca", "finish")
        assert len(x509.load_pem_x509_certificates((pki / "ca.crt").read_bytes())) == 1
        log = (cluster.home / "up.log").read_text(errors="replace")
        assert "certificate renewal failed" not in log and "retrying" not in log, log[-4000:]
        assert refused(cluster) == []

        assert cluster.process is not None
        cluster.process.send_signal(signal.SIGTERM)  # a restart: now nothing trusts the old CA
        cluster.process.wait(60)
        cluster.start()
        await until("the node Ready again", lambda: node_ready(cluster), cluster, timeout=120)
        await running(cluster, "after", manifest)
        assert all(issuer(cluster, identity) == new_ca for identity in identities)
        assert file_serial(cluster, "server") != 0
        old = ApiClient(f"https://127.0.0.1:{cluster.ports['api-port']}", ca=pki / "ca.crt",
                        cert=kept / "admin.crt", key=kept / "admin.key")
        try:
            with pytest.raises(PersysError):  # the old CA's admin certificate: its chain no longer verifies
                await old.list("Workload", "default")
        finally:
            await old.close()
        with pytest.raises(ssl.SSLError):  # and a client trusting only the old CA no longer trusts the server
            ssl.create_default_context(cafile=str(kept / "ca.crt")).wrap_socket(
                __import__("socket").create_connection(("127.0.0.1", cluster.ports["api-port"])),
                server_hostname="127.0.0.1")
        info = json.loads(cluster.persys("get", "workloads", "-o", "json").stdout)
        assert info
