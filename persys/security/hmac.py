"""HMAC-SHA256 request signing between controllers and node agents.

Controllers sign every agent request with a shared secret; agents verify it. The signature
covers the method, the path with its query string, a timestamp, a nonce and the body's
SHA-256, so that a captured request can be neither altered nor replayed:

    Authorization: PERSYS-HMAC-SHA256 keyId=default, ts=1700000000, nonce=…, sig=<hex>
    sig = HMAC-SHA256(secret, "METHOD\\npath?query\\nts\\nnonce\\nsha256hex(body)")
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from persys.errors import Unauthorized

SCHEME = "PERSYS-HMAC-SHA256"
_FIELDS = ("keyId", "ts", "nonce", "sig")
_PAIR = re.compile(r"^\s*(keyId|ts|nonce|sig)=([^\s,=]+)\s*$")


def string_to_sign(method: str, path_qs: str, ts: int, nonce: str, body: bytes) -> bytes:
    """The canonical text the signature covers."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path_qs}\n{ts}\n{nonce}\n{digest}".encode()


def signature(secret: bytes, method: str, path_qs: str, ts: int, nonce: str, body: bytes) -> str:
    return hmac.new(secret, string_to_sign(method, path_qs, ts, nonce, body), hashlib.sha256).hexdigest()


def sign(method: str, path_qs: str, body: bytes, key_id: str, secret: bytes, *,
         ts: int | None = None, nonce: str | None = None) -> str:
    """The ``Authorization`` header value for one request (fresh timestamp and nonce by default)."""
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or _secrets.token_hex(16)
    sig = signature(secret, method, path_qs, ts, nonce, body)
    return f"{SCHEME} keyId={key_id}, ts={ts}, nonce={nonce}, sig={sig}"


def parse_header(header: str) -> dict[str, str]:
    """The four fields of an ``Authorization`` header; raises Unauthorized when it is malformed."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SCHEME:
        raise Unauthorized(f"malformed Authorization header: scheme must be {SCHEME}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        match = _PAIR.match(part)
        if not match or match.group(1) in fields:
            raise Unauthorized(f"malformed Authorization header: bad field {part.strip()!r}")
        fields[match.group(1)] = match.group(2)
    missing = [name for name in _FIELDS if name not in fields]
    if missing:
        raise Unauthorized(f"malformed Authorization header: missing {', '.join(missing)}")
    if not fields["ts"].isdigit():
        raise Unauthorized("malformed Authorization header: ts must be a unix timestamp")
    return fields


class NonceCache:
    """Nonces seen within the skew window; bounded, oldest evicted first, entries expire."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def add(self, nonce: str) -> bool:
        """Remember ``nonce``; False when it was already seen and has not expired."""
        now = self.clock()
        while self._seen and next(iter(self._seen.values())) <= now:
            self._seen.popitem(last=False)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now + self.ttl
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)


class Verifier:
    """Checks signed requests against the secrets it knows, by key id."""

    def __init__(self, secrets: dict[str, bytes], max_skew: int = 300, nonce_cache_size: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.secrets = dict(secrets)
        self.max_skew = max_skew
        self.clock = clock
        # a nonce only needs remembering while its timestamp is acceptable: twice the skew
        self.nonces = NonceCache(ttl=2 * max_skew, size=nonce_cache_size, clock=clock)

    def verify(self, method: str, path_qs: str, body: bytes, header: str | None) -> str:
        """The caller's key id; raises Unauthorized naming why the request is refused."""
        if not header:
            raise Unauthorized("missing Authorization header")
        fields = parse_header(header)
        secret = self.secrets.get(fields["keyId"])
        if secret is None:
            raise Unauthorized(f"unknown key id {fields['keyId']!r}")
        ts = int(fields["ts"])
        skew = abs(self.clock() - ts)
        if skew > self.max_skew:
            raise Unauthorized(f"clock skew of {int(skew)}s exceeds {self.max_skew}s")
        expected = signature(secret, method, path_qs, ts, fields["nonce"], body)
        if not hmac.compare_digest(expected, fields["sig"]):
            raise Unauthorized("bad signature")
        # checked after the signature, so that forged requests cannot fill the cache
        if not self.nonces.add(f"{fields['keyId']}:{fields['nonce']}"):
            raise Unauthorized("reused nonce")
        return fields["keyId"]
