"""``persys token create|list|delete`` and ``persys certificate list|approve|deny`` against a real API."""

from __future__ import annotations

import asyncio
import re

from persys.security.bootstrap import ca_hash, secret_matches, split_token
from tests.support.cluster import RunningApi, cli
from tests.support.joining import csr_object


def test_token_create_list_delete(api: RunningApi) -> None:
    code, out, err = cli(api.home, "token", "create", "--ttl", "2h", "--description", "rack 4", "--node", "n7")
    assert code == 0, err
    parts = split_token(out.strip())
    assert parts is not None, out
    token_id, secret = parts
    stored = asyncio.run(_get(api, "BootstrapToken", token_id))
    assert secret_matches(secret, stored["spec"]["secretHash"]) and secret not in str(stored)
    assert stored["spec"]["nodeNames"] == ["n7"] and stored["spec"]["roles"] == ["agents"]
    code, out, _ = cli(api.home, "token", "list")
    assert code == 0 and token_id in out and "rack 4" in out and "n7" in out and secret not in out
    code, out, err = cli(api.home, "token", "delete", token_id)
    assert code == 0 and f"bootstraptoken/{token_id} deleted" in out, err
    code, out, _ = cli(api.home, "token", "list")
    assert token_id not in out


def test_token_create_prints_the_join_command(api: RunningApi) -> None:
    code, out, err = cli(api.home, "token", "create", "--print-join-command")
    assert code == 0, err
    found = re.fullmatch(r"persys agent --join (\S+) --token (\S+) --ca-hash (\S+) --name NODE --listen \S+\n", out)
    assert found is not None, out
    assert found.group(1) == api.secure_url and split_token(found.group(2)) is not None
    assert found.group(3) == ca_hash(api.pki.ca_cert.read_bytes())


def test_bad_ttl_names_the_flag(api: RunningApi) -> None:
    for ttl in ("soon", "0", "400d"):
        code, _, err = cli(api.home, "token", "create", "--ttl", ttl)
        assert code == 2 and "--ttl" in err, err


def test_certificate_approve_deny_list(api: RunningApi) -> None:
    asyncio.run(_create(api, csr_object("ops-1", "ops", role="operators")))
    asyncio.run(_create(api, csr_object("ops-2", "ops", role="operators")))
    code, out, err = cli(api.home, "certificate", "approve", "ops-1")
    assert code == 0 and "certificatesigningrequest/ops-1 approved" in out, err
    code, out, err = cli(api.home, "certificate", "deny", "ops-2", "--message", "who is this?")
    assert code == 0 and "denied" in out, err
    status = asyncio.run(_get(api, "CertificateSigningRequest", "ops-2"))["status"]
    assert status["conditions"][0]["type"] == "Denied" and status["conditions"][0]["message"] == "who is this?"
    code, _, err = cli(api.home, "certificate", "approve", "ops-2")
    assert code == 1 and "already Denied" in err
    code, _, err = cli(api.home, "certificate", "approve", "nope")
    assert code == 1 and "not found" in err
    code, out, _ = cli(api.home, "certificate", "list")
    assert re.search(r"ops-1\s+admin\s+operators\s+Approved", out) and re.search(r"ops-2\s.*Denied", out), out


async def _get(api: RunningApi, kind: str, name: str) -> dict[str, object]:
    async with api.client() as admin:
        return (await admin.get(kind, name, namespace="")).to_dict()


async def _create(api: RunningApi, obj: object) -> None:
    async with api.client() as admin:
        await admin.create(obj)  # type: ignore[arg-type]
