"""``persys pki init`` / ``persys pki issue``: the files, their modes, names, roles and SANs, idempotency."""

from __future__ import annotations

import ipaddress
import re
import stat
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from persys.security.paths import HomePaths
from tests.support.cluster import cli


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def subject(cert: x509.Certificate) -> tuple[str, str]:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    return str(cn), str(org)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_everything_once(tmp_path: Path) -> None:
    home = HomePaths(tmp_path / "home")
    code, out, err = cli(home.home, "pki", "init")
    assert code == 0, err
    ca = load(home.ca_cert)
    for identity, expected in (("admin", ("admin", "persys:admins")),
                               ("controller", ("controller", "persys:controllers"))):
        cert = load(home.cert(identity))
        assert subject(cert) == expected and cert.issuer == ca.subject
        assert mode(home.key(identity)) == 0o600
    server = load(home.cert("server"))
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "persys-api", "_persys-api"} <= set(sans.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert mode(home.ca_key) == 0o600 and mode(home.hmac_secret) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}", home.hmac_secret.read_text().strip())
    config = yaml.safe_load(home.config.read_text())
    assert config == {"server": "https://127.0.0.1:7443", "ca": str(home.ca_cert),
                      "cert": str(home.cert("admin")), "key": str(home.key("admin"))}
    assert all(Path(config[k]).is_absolute() for k in ("ca", "cert", "key"))
    before = {p.name: p.read_bytes() for p in home.pki.iterdir()}
    assert cli(home.home, "pki", "init")[0] == 0
    assert {p.name: p.read_bytes() for p in home.pki.iterdir()} == before


def test_issue_agent_and_server_certificates(tmp_path: Path) -> None:
    home = HomePaths(tmp_path / "home")
    code, out, err = cli(home.home, "pki", "issue", "--identity", "node-n7", "--role", "agents")
    assert code == 0, err
    agent = load(home.cert("node-n7"))
    assert subject(agent) == ("n7", "persys:agents") and mode(home.key("node-n7")) == 0o600
    assert agent.issuer == load(home.ca_cert).subject
    code, _, err = cli(home.home, "pki", "issue", "--identity", "api-2", "--role", "controllers",
                       "--san", "api-2.persys.local", "--san", "127.0.0.2")
    assert code == 0, err
    server = load(home.cert("api-2"))
    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["api-2.persys.local"]
    code, _, err = cli(home.home, "pki", "issue", "--identity", "x", "--role", "wizards")
    assert code == 2 and "wizards" in err


def test_a_certificate_missing_a_name_asked_for_is_issued_again_and_lifetimes_are_settings(tmp_path: Path) -> None:
    home = HomePaths(tmp_path / "home")
    code, _, err = cli(home.home, "pki", "init", "--certificate-seconds", "3600")
    assert code == 0, err
    first = load(home.cert("server"))
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert 3600 <= lifetime.total_seconds() <= 3600 + 360  # started a tenth of it earlier, for clock skew
    ca = load(home.ca_cert)
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3649
    code, _, err = cli(home.home, "pki", "init")
    assert code == 0 and load(home.cert("server")).serial_number == first.serial_number  # kept
    code, _, err = cli(home.home, "pki", "issue", "--identity", "web", "--role", "gateway", "--san", "a.example")
    kept = load(home.cert("web")).serial_number
    code, _, err = cli(home.home, "pki", "issue", "--identity", "web", "--role", "gateway", "--san", "a.example")
    assert load(home.cert("web")).serial_number == kept
    code, _, err = cli(home.home, "pki", "issue", "--identity", "web", "--role", "gateway", "--san", "b.example")
    assert code == 0 and load(home.cert("web")).serial_number != kept  # a name it lacked: issued again
