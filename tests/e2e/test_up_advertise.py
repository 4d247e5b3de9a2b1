"""`persys up --advertise ADDRESS`: the API's mTLS listener binds every address, its certificate names
ADDRESS, and the join command `up` prints points other hosts at it. Checked over 127.0.0.1 only; a bad
address is refused before anything starts."""

from __future__ import annotations

import re
import ssl
import subprocess
from pathlib import Path

from cryptography import x509

from tests.e2e.test_rotation import node_ready
from tests.e2e.test_up import PERSYS, until, up_process

ADDRESS = "persys-api.example.test"


def names(pem: bytes) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)


async def test_up_advertises_an_address_for_other_hosts(tmp_path: Path) -> None:
    with up_process(tmp_path, "adv") as cluster:
        cluster.extra = ("--advertise", ADDRESS.upper())
        cluster.start()
        await until("the node Ready", lambda: node_ready(cluster), cluster, timeout=120)
        await until("the join command", lambda: "persys agent --join" in cluster.log(), cluster)
        port = cluster.ports["api-port"]
        served = ssl.get_server_certificate(("127.0.0.1", port)).encode()  # bound on every address, loopback too
        assert ADDRESS in names(served) and "localhost" in names(served)
        log = (cluster.home / "up.log").read_text()
        join = re.search(r"persys agent --join (\S+)", log)
        assert join is not None and join.group(1) == f"https://{ADDRESS}:{port}", log[-2000:]
        assert f"https://{ADDRESS}:{port} for other hosts" in log and "--advertise ADDRESS" not in log


def test_a_bad_advertise_address_is_refused_naming_the_flag(tmp_path: Path) -> None:
    for bad in ("https://host:7443", "host:7443", "under_score.example"):
        result = subprocess.run([PERSYS, "up", "--home", str(tmp_path / "home"), "--advertise", bad],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "--advertise" in result.stderr and bad in result.stderr, result.stderr
