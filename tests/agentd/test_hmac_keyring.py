"""The agents' HMAC keyring row by row: what verifiers accept and signers use through a rotation, the file
and stored forms (one hex line still means key id ``default``), bad input named, and the verifier following
a keyring that changes under it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from persys.errors import BadRequest, Invalid, Unauthorized
from persys.security.hmac import Verifier, sign
from persys.security.keyring import HmacKey, Keyring, read_keyring, write_keyring

T = 1_800_000_000.0  # the rotation
W = 600.0  # its overlap window
OLD, NEW = b"a" * 64, b"b" * 64
BEFORE = Keyring.single(OLD)
ROTATED = BEFORE.rotate(T, W, key_id="k2", secret=NEW)

ROWS = [
    # (name, keyring, now, keys verifiers accept, key signers use)
    ("one key, as pki init makes it", BEFORE, T, ["default"], "default"),
    ("phase 1: the new key is accepted at once", ROTATED, T, ["default", "k2"], "default"),
    ("phase 1: signers keep the old key until the window passed", ROTATED, T + W - 1, ["default", "k2"], "default"),
    ("phase 2: signers switch after the window", ROTATED, T + W, ["default", "k2"], "k2"),
    ("phase 2: the old key is still accepted", ROTATED, T + 2 * W - 1, ["default", "k2"], "k2"),
    ("phase 3: the old key expires after twice the window", ROTATED, T + 2 * W, ["k2"], "k2"),
    ("a clock behind the rotation still signs with the old key", ROTATED, T - 5, ["default", "k2"], "default"),
]


@pytest.mark.parametrize(("keyring", "now", "accepted", "signing"), [row[1:] for row in ROWS],
                         ids=[row[0] for row in ROWS])
def test_rotation_phases(keyring: Keyring, now: float, accepted: list[str], signing: str) -> None:
    assert sorted(keyring.accepted(now)) == accepted
    assert keyring.signing(now).id == signing
    assert signing in accepted  # whatever signers use, verifiers accept


def test_rotating_again_during_the_window_keeps_a_signing_key_at_every_moment() -> None:
    again = ROTATED.rotate(T + 100, W, key_id="k3", secret=b"c" * 64)
    assert [k.expires for k in again.keys] == [T + 2 * W, T + 100 + 2 * W, None]  # an end, once set, stays
    for now in range(int(T), int(T + 100 + 3 * W), 7):
        assert again.signing(now).id in again.accepted(now)
    assert again.signing(T + 100 + W).id == "k3"
    later = again.rotate(T + 5 * W, W, key_id="k4")
    assert [k.id for k in later.keys] == ["k3", "k4"]  # expired keys are dropped when the keyring is rotated


def test_states_shown_to_admins_hide_the_secrets() -> None:
    shown = ROTATED.to_dict(with_secrets=False, now=T + W)
    assert [(k["id"], k["state"]) for k in shown["keys"]] == [("default", "previous"), ("k2", "signing")]
    assert "secret" not in json.dumps(shown)
    assert [k["state"] for k in ROTATED.to_dict(now=T)["keys"]] == ["signing", "next"]
    assert [k["state"] for k in ROTATED.to_dict(now=T + 2 * W)["keys"]] == ["expired", "signing"]


def test_file_forms(tmp_path: Path) -> None:
    path = tmp_path / "agent-hmac.secret"
    path.write_text("ab" * 32 + "\n")  # what persys pki init writes
    assert read_keyring(path) == Keyring((HmacKey("default", b"ab" * 32),))
    write_keyring(path, ROTATED)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_keyring(path) == ROTATED == Keyring.parse(ROTATED.render(), "stored")


BAD = [
    ("", "must hold one line"),
    ("abc def", "must hold one line"),
    ("{nope", "is not valid JSON"),
    ('{"keys": []}', "keys must be a non-empty list"),
    ('{"keys": ["x"]}', "keys[0] must be a mapping"),
    ('{"keys": [{"id": "a b", "secret": "x"}]}', "keys[0].id must be 1-63 letters"),
    ('{"keys": [{"id": "k", "secret": "x"}, {"id": "k", "secret": "y"}]}', "keys[1].id 'k' appears twice"),
    ('{"keys": [{"id": "k", "secret": ""}]}', "keys[0].secret must be 1-512 printable"),
    ('{"keys": [{"id": "k", "secret": "x", "signFrom": "soon"}]}', "keys[0].signFrom must be a unix time"),
    ('{"keys": [{"id": "k", "secret": "x", "expires": true}]}', "keys[0].expires must be a unix time"),
]


@pytest.mark.parametrize(("text", "problem"), BAD, ids=[row[1] for row in BAD])
def test_bad_keyrings_are_named(text: str, problem: str) -> None:
    with pytest.raises(Invalid, match=f"^/pki/agent-hmac.secret: {problem[:20]}".replace("[", r"\[")):
        Keyring.parse(text, "/pki/agent-hmac.secret")


def test_bad_overlap_and_missing_file(tmp_path: Path) -> None:
    for overlap in (0.0, -1.0, 31 * 86400.0):
        with pytest.raises(Invalid, match="the overlap window must be 1s to 30d"):
            BEFORE.rotate(T, overlap)
    with pytest.raises(Invalid, match="key id 'default' is already in the keyring"):
        BEFORE.rotate(T, W, key_id="default")
    with pytest.raises(BadRequest, match="no HMAC secret at .*: run `persys pki init`"):
        read_keyring(tmp_path / "missing")


def test_the_verifier_follows_its_keyring() -> None:
    now = [T]
    verifier = Verifier(BEFORE, clock=lambda: now[0])

    def check(key_id: str, secret: bytes) -> str:
        return verifier.verify("GET", "/v1/workloads", b"", sign("GET", "/v1/workloads", b"", key_id, secret,
                                                                   ts=int(now[0])))

    with pytest.raises(Unauthorized, match="unknown key id 'k2'"):
        check("k2", NEW)
    verifier.keyring = ROTATED  # what the agent re-read
    assert check("k2", NEW) == "k2" and check("default", OLD) == "default"
    now[0] = T + 2 * W
    with pytest.raises(Unauthorized, match="expired key id 'default'"):
        check("default", OLD)
    assert check("k2", NEW) == "k2"
