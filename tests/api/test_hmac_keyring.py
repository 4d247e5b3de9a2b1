"""The agents' HMAC keyring through the API: admins see it (never a secret) and rotate it (bad input named,
other roles refused); agents read it from node-config; ``persys pki hmac-keys`` and ``rotate-hmac``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from persys.security.keyring import read_keyring
from persys.security.paths import HomePaths
from persys.store import Etcd
from persys.store.server import EtcdServer
from tests.support.cluster import ApiThread, RunningApi, cli, raw_request


@pytest.fixture
def keyed_api(etcd: Etcd, etcd_server: EtcdServer, pki_home: HomePaths, tmp_path: Path) -> Iterator[RunningApi]:
    """The API started with the home's HMAC secret, as persys server and persys up start it."""
    thread = ApiThread(etcd_server.url, pki_home.home, hmac_secret=read_keyring(pki_home.hmac_secret)).start()
    try:
        yield RunningApi(thread, pki_home, tmp_path / "home")
    finally:
        thread.stop()


async def call(api: RunningApi, method: str, path: str, body: bytes | None = None,
               identity: str = "admin") -> tuple[int, dict]:  # type: ignore[type-arg]
    status, answer, _ = await raw_request(api, method, path, body=body, identity=identity)
    return status, json.loads(answer)


async def test_admins_rotate_and_agents_follow(keyed_api: RunningApi, pki_home: HomePaths) -> None:
    status, shown = await call(keyed_api, "GET", "/hmac-keyring")
    assert status == 200 and shown["keys"] == [{"id": "default", "signFrom": 0.0, "expires": None, "state": "signing"}]
    status, rotated = await call(keyed_api, "POST", "/hmac-keyring/rotate", b'{"overlapSeconds": 120}')
    assert status == 201, rotated
    old, new = rotated["keys"]
    assert (old["state"], new["state"]) == ("signing", "next") and old["expires"] == new["signFrom"] + 120
    assert "secret" not in json.dumps(rotated)
    status, config = await call(keyed_api, "GET", "/bootstrap/node-config", identity="node-n1")
    assert status == 200 and config["hmacKeyId"] == "default"  # still the signing key for 120 s
    assert [k["id"] for k in config["hmacKeyring"]["keys"]] == ["default", new["id"]]
    assert config["hmacSecret"] == pki_home.hmac_secret.read_text().strip()


async def test_bad_rotations_are_named_and_only_admins_rotate(keyed_api: RunningApi) -> None:
    cases = [
        (b"[1]", 422, "body must be a mapping"),
        (b'{"overlapSeconds": "10m"}', 422, "overlapSeconds must be a number of seconds, not '10m'"),
        (b'{"overlapSeconds": true}', 422, "overlapSeconds must be a number"),
        (b'{"overlapSeconds": 0}', 422, "the overlap window must be 1s to 30d, not 0s"),
        (b'{"overlapSeconds": 1e9}', 422, "the overlap window must be 1s to 30d"),
        (b"{nope", 400, "not valid JSON"),
    ]
    for body, code, message in cases:
        status, answer = await call(keyed_api, "POST", "/hmac-keyring/rotate", body)
        assert status == code and message in answer["message"], (body, answer)
    for identity in ("controller", "node-n1"):
        status, answer = await call(keyed_api, "POST", "/hmac-keyring/rotate", b"{}", identity=identity)
        assert status == 403, answer
    status, shown = await call(keyed_api, "GET", "/hmac-keyring")
    assert len(shown["keys"]) == 1  # nothing was rotated


async def test_without_a_keyring_the_routes_say_so(api: RunningApi) -> None:
    status, answer = await call(api, "POST", "/hmac-keyring/rotate", b"{}")
    assert status == 404 and "etcd holds no agents' HMAC keyring" in answer["message"]


def test_the_cli_rotates_and_lists(keyed_api: RunningApi) -> None:
    code, out, err = cli(keyed_api.home, "pki", "rotate-hmac", "--overlap", "nope")
    assert code == 2 and "'nope' is not a duration" in err
    code, out, err = cli(keyed_api.home, "pki", "rotate-hmac", "--overlap", "0s")
    assert code == 1 and "the overlap window must be 1s to 30d, not 0s" in err and "Traceback" not in err
    code, out, err = cli(keyed_api.home, "pki", "rotate-hmac", "--overlap", "2m")
    assert code == 0, err
    assert "added: agents accept it now, signers switch to it at" in out
    code, out, err = cli(keyed_api.home, "pki", "hmac-keys")
    assert code == 0, err
    header, first, second = out.splitlines()
    assert header.split() == ["KEY", "STATE", "SIGNS", "FROM", "EXPIRES"]
    assert first.split()[:3] == ["default", "signing", "-"] and second.split()[1] == "next"
