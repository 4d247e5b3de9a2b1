"""The gateway's own tokens: short-lived signed access tokens, and refresh tokens bound to a session.

An access token is a JWT (HS256, PyJWT) naming the user, their groups and the session it belongs to;
it lives ``access_ttl`` seconds and is checked by signature, expiry, audience and the session still
existing (a revoked session's tokens stop at once). A refresh token is ``<session id>.<secret>``;
the session keeps only the secret's SHA-256, and each refresh replaces it (rotation: a refresh
token works once). The signing key is ``$PERSYS_HOME/pki/gateway-token.key``, shared by every
gateway of the cluster as the CA is; GitHub tokens kept in sessions are encrypted with a key
derived from it (Fernet), never stored in the clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.fernet import Fernet, InvalidToken

from persys.errors import Unauthorized

ISSUER = "persys-gateway"
AUDIENCE = "persys"
ALGORITHM = "HS256"
VERIFIED_CACHE = 10_000  # tokens remembered as verified (all forgotten at once when full)


def ensure_signing_key(path: Path) -> bytes:
    """The key in ``path``, created (32 random bytes, hex, mode 0600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32) + "\n")
    key = bytes.fromhex(path.read_text().strip())
    if len(key) < 32:
        raise ValueError(f"{path}: the gateway's token key must be at least 32 bytes of hex")
    return key


@dataclass(frozen=True)
class Claims:
    """Who an access token speaks for."""

    user: str
    groups: tuple[str, ...]
    session: str
    expires: float


class Tokens:
    """Signs and checks access tokens, makes refresh tokens, and seals GitHub tokens."""

    def __init__(self, key: bytes, *, access_ttl: int) -> None:
        self._key = key
        self.access_ttl = access_ttl
        self._verified: dict[str, Claims] = {}
        self._fernet = Fernet(base64.urlsafe_b64encode(hmac.new(key, b"persys-gateway/github-token",
                                                                 hashlib.sha256).digest()))

    def access(self, user: str, groups: list[str] | tuple[str, ...], session: str,
               now: float | None = None) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds."""
        issued = int(now if now is not None else time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": user, "groups": list(groups), "sid": session,
                  "iat": issued, "exp": issued + self.access_ttl, "typ": "access"}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM), self.access_ttl

    def verify(self, token: str) -> Claims:
        """The claims of a valid access token; Unauthorized naming what is wrong otherwise.

        A token checked once is remembered until it expires (a client sends the same one many times).
        """
        known = self._verified.get(token)
        if known is not None and known.expires > time.time():
            return known
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> Claims:
        try:
            claims: dict[str, Any] = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE,
                                                issuer=ISSUER, options={"require": ["exp", "sub", "sid"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the access token has expired: refresh it (persys login refreshes)") from None
        except jwt.InvalidTokenError as e:
            raise Unauthorized(f"the access token is not valid: {e}") from None
        groups = claims.get("groups") or []
        if claims.get("typ") != "access" or not isinstance(groups, list):
            raise Unauthorized("the token is not an access token of this gateway")
        return Claims(str(claims["sub"]), tuple(str(g) for g in groups), str(claims["sid"]), float(claims["exp"]))

    @staticmethod
    def refresh(session: str) -> tuple[str, str]:
        """A new refresh token for ``session`` and the digest the session keeps of it."""
        secret = secrets.token_urlsafe(32)
        return f"{session}.{secret}", digest(secret)

    @staticmethod
    def split_refresh(token: str) -> tuple[str, str]:
        """(session id, digest of the secret) of a refresh token; Unauthorized when it has no such shape."""
        session, dot, secret = token.partition(".")
        if not dot or not session or not secret:
            raise Unauthorized("malformed refresh token")
        return session, digest(secret)

    def seal(self, github_token: str) -> str:
        return self._fernet.encrypt(github_token.encode()).decode()

    def unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise Unauthorized("the session's GitHub token cannot be read with this gateway's key") from None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
