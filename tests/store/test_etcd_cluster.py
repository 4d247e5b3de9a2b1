"""etcd as a cluster: three real members on 127.0.0.1 with TLS and client certificates required.

A client given every endpoint keeps working when the member it talks to is killed; a client
without a certificate is refused; the CLI's ``--etcd-*`` flags name what is wrong with them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from persys.errors import StoreUnavailable
from persys.resources import REGISTRY, Resource
from persys.security import pki
from persys.security.paths import HomePaths
from persys.store import Etcd, EtcdTLS, ObjectStore
from persys.store.server import EtcdCluster

PERSYS = str(Path(sys.executable).parent / "persys")


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[EtcdCluster, HomePaths]]:
    """Three members serving a certificate of the home's CA, asking clients for one of the same CA."""
    paths = pki.init(tmp_path / "home")
    cert, key = pki.issue(paths, "etcd-member", "servers", sans=["127.0.0.1"])
    cluster = EtcdCluster(tmp_path, tls=EtcdTLS(paths.ca_cert, cert, key))
    try:
        await cluster.start()
        yield cluster, paths
    finally:
        cluster.stop()


def workload(name: str) -> Resource:
    return REGISTRY.parse({"kind": "Workload", "metadata": {"name": name, "namespace": "default"},
                           "spec": {"image": "persys/busybox:local"}})


async def test_a_client_keeps_working_when_the_member_it_talks_to_is_killed(
        secured: tuple[EtcdCluster, HomePaths]) -> None:
    cluster, paths = secured
    cert, key = pki.issue(paths, "controller", "controllers")
    etcd = Etcd(cluster.endpoints, tls=EtcdTLS(paths.ca_cert, cert, key))
    store = ObjectStore(etcd, REGISTRY)
    try:
        await store.create(workload("before"))
        member = cluster.member(etcd.url)
        assert member.process is not None
        os.kill(member.process.pid, signal.SIGKILL)
        await member.wait_exit()
        await store.create(workload("after"))
        assert etcd.url != member.url
        items, _ = await store.list("Workload", "default")
        assert sorted(o.metadata.name for o in items) == ["after", "before"]
        await cluster.restart(member)  # it rejoins with what it missed
        alone = Etcd(member.url, tls=EtcdTLS(paths.ca_cert, cert, key))
        try:
            items, _ = await ObjectStore(alone, REGISTRY).list("Workload", "default")
            assert sorted(o.metadata.name for o in items) == ["after", "before"]
        finally:
            await alone.close()
    finally:
        await etcd.close()


async def test_a_client_without_a_certificate_is_refused(secured: tuple[EtcdCluster, HomePaths]) -> None:
    cluster, paths = secured
    for tls in (EtcdTLS(paths.ca_cert), None):  # no client certificate; no TLS at all
        etcd = Etcd(cluster.endpoints.replace("https://", "http://") if tls is None else cluster.endpoints,
                    timeout=2.0, tls=tls)
        try:
            with pytest.raises(StoreUnavailable):
                await etcd.put("/persys/x", b"1")
        finally:
            await etcd.close()


NO_CA = "'--etcd-ca' (env var: 'PERSYS_ETCD_CA'): File '/nonexistent/ca.crt' does not exist"


@pytest.mark.parametrize(("command", "args", "message"), [
    ("server", ["--etcd-cert", "{cert}"], "--etcd-key is required with --etcd-cert"),
    ("server", ["--etcd-key", "{key}"], "--etcd-cert is required with --etcd-key"),
    ("server", ["--etcd-ca", "/nonexistent/ca.crt"], NO_CA),
    ("controllers", ["--etcd-cert", "{cert}"], "--etcd-key is required with --etcd-cert"),
    ("dns", ["--etcd-ca", "/nonexistent/ca.crt"], NO_CA),
])
def test_etcd_tls_flags_name_what_is_wrong(tmp_path: Path, command: str, args: list[str], message: str) -> None:
    paths = pki.init(tmp_path / "home")
    cert, key = pki.issue(paths, "controller", "controllers")
    argv = [a.format(cert=cert, key=key) for a in args]
    done = subprocess.run([PERSYS, "--home", str(paths.home), command, "--etcd", "https://127.0.0.1:1", *argv],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
