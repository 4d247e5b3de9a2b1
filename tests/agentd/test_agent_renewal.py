"""A joined agent renews its certificate through a CSR at 2/3 of its lifetime, with no restart: its HTTPS
listener serves the new certificate, its heartbeats go on after the first certificate expired, and
``persys_certificate_expiry_seconds`` and a warning say how long is left. Real etcd, a real API server and
csr-signer (signing 24-second certificates), the agent as its own process."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from persys.client import ApiClient
from persys.errors import Forbidden
from persys.renewal import finish_swap
from persys.runtime.clock import from_iso
from persys.security import pki, tls
from persys.security.bootstrap import ca_hash
from persys.security.keyring import read_keyring
from persys.store import Etcd, ObjectStore
from persys.store.server import EtcdServer, free_port
from tests.support.cluster import ApiThread
from tests.support.eventually import eventually
from tests.support.joining import signer, token_object

PERSYS = str(Path(sys.executable).with_name("persys"))
LIFETIME = 24.0


@pytest.fixture
def api_thread(etcd: Etcd, etcd_server: EtcdServer, tmp_path: Path) -> Iterator[ApiThread]:
    paths = pki.init(tmp_path / "cluster")
    thread = ApiThread(etcd_server.url, paths.home, hmac_secret=read_keyring(paths.hmac_secret)).start()
    try:
        yield thread
    finally:
        thread.stop()


def start_agent(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSYS_", "OTEL_"))}
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)


def serial(cert: Path) -> int:
    return x509.load_pem_x509_certificate(cert.read_bytes()).serial_number


def served_serial(port: int) -> int:
    return x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", port)).encode()).serial_number


def expiry_metric(port: int, identity: str) -> float:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context, timeout=5) as response:
        text = response.read().decode()
    prefix = f'persys_certificate_expiry_seconds{{identity="{identity}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix)).split()[-1])


async def test_a_joined_agent_renews_its_certificate_without_a_restart(
        api_thread: ApiThread, etcd_server: EtcdServer, store: ObjectStore, tmp_path: Path) -> None:
    cluster = api_thread.home
    token, secret = token_object()
    await store.create(token)
    node, port, state = "renewing", free_port(), tmp_path / "state"
    (tmp_path / "node-home").mkdir()
    args = [PERSYS, "--home", str(tmp_path / "node-home"), "agent", "--runtime", "simulated", "--name", node,
            "--listen", f"127.0.0.1:{port}", "--join", api_thread.secure_url, "--token", secret, "--ca-hash",
            ca_hash((cluster / "pki" / "ca.crt").read_bytes()), "--state-dir", str(state)]
    async with signer(etcd_server.url, cluster, certificate_seconds=LIFETIME):
        agent = start_agent(args, tmp_path / "agent.log")
        try:
            cert = state / "pki" / "node.crt"
            await eventually(lambda: cert.exists(), 30, "the joined certificate")
            first = x509.load_pem_x509_certificate(cert.read_bytes())
            await eventually(lambda: serial(cert) != first.serial_number, 40, "a renewed certificate")
            assert agent.poll() is None  # the same process: no restart
            assert await eventually(lambda: served_serial(port) != first.serial_number, 10, "the new one served")
            renewals = [c for c in (await store.list("CertificateSigningRequest"))[0] if c.spec["username"] == node]
            assert renewals and renewals[0].status["conditions"][0]["reason"] == "Renewal"
            assert renewals[0].spec["requester"]["role"] == "persys:agents"
            expired = first.not_valid_after_utc.timestamp()

            async def heartbeat_after_expiry() -> bool:
                found = await store.get("Node", "", node)
                return (from_iso(found.status.get("lastHeartbeatTime")) or 0) > expired + 1

            await eventually(heartbeat_after_expiry, 40, "a heartbeat after the first certificate expired")
            second = serial(cert)  # renewed again, authenticated by the renewed certificate
            await eventually(lambda: serial(cert) != second, 40, "a second renewal")
            assert 0 < expiry_metric(port, f"node-{node}") <= LIFETIME
            assert agent.poll() is None
        finally:
            agent.terminate()
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
    log = (tmp_path / "agent.log").read_text()
    assert "certificate renewed" in log and "certificate expires soon" in log, log[-3000:]


async def test_a_client_presents_a_renewed_certificate_on_new_connections(api_thread: ApiThread) -> None:
    paths = pki.init(api_thread.home)
    one, one_key = pki.issue(paths, "node-one", "agents")
    two, two_key = pki.issue(paths, "node-two", "agents")
    client = ApiClient(api_thread.secure_url, ca=paths.ca_cert, cert=one, key=one_key)
    try:
        for expected in ("one", "two"):
            with pytest.raises(Forbidden, match=f"'{expected}' \\(role persys:agents\\) may not"):
                await client.apply_raw({"kind": "Node", "metadata": {"name": "someone-else"}, "spec": {}})
            one.write_bytes(two.read_bytes())  # as a renewal swaps the files, then reloads whoever presents them
            one_key.write_bytes(two_key.read_bytes())
            for context in tls.using(one):
                context.load_cert_chain(one, one_key)
            await client.close()  # the next request opens a new connection
    finally:
        await client.close()


def test_an_interrupted_renewal_is_finished_or_dropped(tmp_path: Path) -> None:
    cert, key = tmp_path / "node.crt", tmp_path / "node.key"
    cert.write_text("old cert")
    key.write_text("new key")  # the key was renamed, then the process died
    (tmp_path / "node.crt.new").write_text("new cert")
    finish_swap(cert, key)
    assert (cert.read_text(), key.read_text()) == ("new cert", "new key")
    assert not (tmp_path / "node.crt.new").exists()
    (tmp_path / "node.key.new").write_text("half")  # died before renaming anything
    (tmp_path / "node.crt.new").write_text("half")
    finish_swap(cert, key)
    assert (cert.read_text(), key.read_text()) == ("new cert", "new key")
    assert not list(tmp_path.glob("*.new"))
