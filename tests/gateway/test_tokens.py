"""The gateway's tokens, row by row: signatures, expiry, refresh token shapes, sealed GitHub tokens."""

from __future__ import annotations

import time

import jwt
import pytest
from multidict import CIMultiDict

from persys.errors import Unauthorized
from persys.gateway.tokens import Tokens, digest, ensure_signing_key
from persys.gateway.upstream import outgoing_headers

KEY = b"k" * 32


def test_an_access_token_names_user_groups_and_session() -> None:
    tokens = Tokens(KEY, access_ttl=60)
    token, ttl = tokens.access("github:octocat", ["github-org:acme", "github-team:acme/ops"], "s1")
    claims = tokens.verify(token)
    assert (claims.user, claims.groups, claims.session, ttl) == (
        "github:octocat", ("github-org:acme", "github-team:acme/ops"), "s1", 60)


@pytest.mark.parametrize("case", ["expired", "other key", "tampered", "none alg", "garbage", "refresh as access"])
def test_bad_access_tokens_are_refused_with_the_reason(case: str) -> None:
    tokens = Tokens(KEY, access_ttl=60)
    good, _ = tokens.access("github:octocat", [], "s1")
    bad = {
        "expired": tokens.access("github:octocat", [], "s1", now=time.time() - 120)[0],
        "other key": Tokens(b"x" * 32, access_ttl=60).access("github:octocat", [], "s1")[0],
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "none alg": jwt.encode({"sub": "github:root", "sid": "s1", "exp": int(time.time()) + 60,
                                "aud": "persys", "iss": "persys-gateway", "typ": "access"}, None, algorithm="none"),
        "garbage": "not-a-token",
        "refresh as access": Tokens.refresh("s1")[0],
    }[case]
    with pytest.raises(Unauthorized) as raised:
        tokens.verify(bad)
    assert ("expired" in raised.value.message) == (case == "expired")


def test_refresh_tokens_are_kept_only_as_digests() -> None:
    token, kept = Tokens.refresh("s1")
    session, presented = Tokens.split_refresh(token)
    assert session == "s1" and presented == kept and token.split(".", 1)[1] not in kept
    assert Tokens.split_refresh(Tokens.refresh("s1")[0])[1] != kept  # every refresh token is new
    for malformed in ("", "nodot", ".secret", "s1."):
        with pytest.raises(Unauthorized):
            Tokens.split_refresh(malformed)
    assert digest("a") != digest("b")


def test_github_tokens_are_sealed_not_stored_in_the_clear() -> None:
    tokens = Tokens(KEY, access_ttl=60)
    sealed = tokens.seal("gho_secret")
    assert "gho_secret" not in sealed and tokens.unseal(sealed) == "gho_secret"
    with pytest.raises(Unauthorized):
        Tokens(b"x" * 32, access_ttl=60).unseal(sealed)


def test_the_signing_key_is_made_once_and_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pki" / "gateway-token.key"
    first = ensure_signing_key(path)
    assert ensure_signing_key(path) == first and len(first) == 32
    assert path.stat().st_mode & 0o777 == 0o600


def test_callers_cannot_choose_whom_the_gateway_impersonates() -> None:
    incoming = CIMultiDict([("Impersonate-User", "admin"), ("impersonate-group", "system:masters"),
                            ("Impersonate-Extra-Scopes", "x"), ("Authorization", "Bearer t"), ("Cookie", "c=1"),
                            ("Connection", "keep-alive"), ("Host", "gw"), ("Accept", "application/json"),
                            ("X-Forwarded-For", "10.0.0.9")])
    out = outgoing_headers(incoming, "github:octocat", ["github-org:acme", "github-team:acme/ops"], "127.0.0.1")
    assert out.getall("Impersonate-User") == ["github:octocat"]
    assert out.getall("Impersonate-Group") == ["github-org:acme", "github-team:acme/ops"]
    assert "Impersonate-Extra-Scopes" not in out and "Authorization" not in out and "Cookie" not in out
    assert "Connection" not in out and "Host" not in out
    assert out["Accept"] == "application/json" and out["X-Forwarded-For"] == "10.0.0.9, 127.0.0.1"
