"""HMAC signing: the Verifier's rules, and the agent answering 401 with the reason over HTTP."""

from __future__ import annotations

import hashlib
import time

import aiohttp
import pytest
from agent_support import KEY_ID, SECRET, new_uid

from persys.errors import Unauthorized
from persys.security.hmac import Verifier, sign, string_to_sign
from tests.support.workloads import agent_workload


def test_signature_covers_the_documented_string() -> None:
    body = b'{"a": 1}'
    text = string_to_sign("post", "/v1/workloads/x?tail=5", 1700000000, "n1", body)
    assert text == f"POST\n/v1/workloads/x?tail=5\n1700000000\nn1\n{hashlib.sha256(body).hexdigest()}".encode()
    header = sign("POST", "/v1/workloads/x?tail=5", body, "k", b"s", ts=1700000000, nonce="n1")
    assert header.startswith("PERSYS-HMAC-SHA256 keyId=k, ts=1700000000, nonce=n1, sig=")


def test_verifier_accepts_and_rejects() -> None:
    now = [1_700_000_000.0]
    verifier = Verifier({"k": b"secret"}, max_skew=300, nonce_cache_size=3, clock=lambda: now[0])

    def header(**kw: object) -> str:
        args: dict[str, object] = {"ts": int(now[0]), "nonce": None, **kw}
        return sign("GET", "/v1/workloads", b"", "k", b"secret", **args)  # type: ignore[arg-type]

    assert verifier.verify("GET", "/v1/workloads", b"", header()) == "k"
    cases = {
        "missing Authorization header": None,
        "malformed": "Bearer abc",
        "unknown key id": sign("GET", "/v1/workloads", b"", "other", b"secret"),
        "clock skew": header(ts=int(now[0]) - 301),
        "bad signature": sign("GET", "/v1/workloads", b"", "k", b"wrong", ts=int(now[0])),
    }
    for reason, value in cases.items():
        with pytest.raises(Unauthorized, match=reason):
            verifier.verify("GET", "/v1/workloads", b"", value)
    replayed = header(nonce="same")
    verifier.verify("GET", "/v1/workloads", b"", replayed)
    with pytest.raises(Unauthorized, match="reused nonce"):
        verifier.verify("GET", "/v1/workloads", b"", replayed)
    # the cache is bounded (oldest evicted) and entries expire after the skew window
    for i in range(5):
        verifier.verify("GET", "/v1/workloads", b"", header(nonce=f"n{i}"))
    assert len(verifier.nonces) <= 3
    now[0] += 601
    verifier.verify("GET", "/v1/workloads", b"", header(nonce="n4"))
    assert len(verifier.nonces) == 1


async def test_agent_refuses_bad_signatures(start_agent, client_for) -> None:  # type: ignore[no-untyped-def]
    agent = await start_agent()
    client = client_for(agent)
    uid = new_uid()
    body = (b'{"metadata": {"uid": "%s"}, "spec": {"image": "persys/busybox:local"}}' % uid.encode())
    path = f"/v1/workloads/{uid}"

    async def post(header: str | None, data: bytes = body, url_path: str = path) -> tuple[int, dict]:  # type: ignore[type-arg]
        headers = {"Authorization": header} if header else {}
        async with aiohttp.ClientSession() as session, session.post(agent.url + url_path, data=data,
                                                                    headers=headers) as resp:
            return resp.status, await resp.json()

    good = sign("POST", path, body, KEY_ID, SECRET)
    cases = [
        ("missing Authorization header", None, body, path),
        ("clock skew", sign("POST", path, body, KEY_ID, SECRET, ts=int(time.time()) - 3600), body, path),
        ("bad signature", good, body.replace(b"busybox", b"busyb0x"), path),  # tampered body
        ("bad signature", good, body, path + "/restart"),                     # tampered path
        ("unknown key id", sign("POST", path, body, "intruder", SECRET), body, path),
        ("bad signature", sign("POST", path, body, KEY_ID, b"wrong-secret"), body, path),
        ("malformed", "PERSYS-HMAC-SHA256 keyId=default", body, path),
    ]
    for reason, header, data, url_path in cases:
        status, answer = await post(header, data, url_path)
        assert status == 401, (reason, answer)
        assert reason in answer["message"] and answer["reason"] == "Unauthorized"
    status, answer = await post(good)
    assert status == 202, answer
    status, answer = await post(good)  # replay of an accepted request
    assert status == 401 and "reused nonce" in answer["message"]
    # unsigned routes stay open; the client signs query strings too
    async with aiohttp.ClientSession() as session, session.get(agent.url + "/healthz") as resp:
        assert resp.status == 200
    assert await client.healthz()
    await client.wait(await client.apply(agent_workload(uid, agent.config.name)), 10)
    assert "hollow" in await client.logs(uid, tail=5)
