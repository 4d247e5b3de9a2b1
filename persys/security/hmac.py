"""HMAC-SHA256 request signing between controllers and node agents.

Controllers sign every agent request with a shared secret; agents verify it. The signature
covers the method, the path with its query string, a timestamp, a nonce, the body's SHA-256
and the node the request is meant for, so that a captured request can be neither altered,
nor replayed, nor sent on to another node (every agent shares the secret, so without the
node a request one agent received would be good at any other):

    Authorization: PERSYS-HMAC-SHA256 keyId=default, node=n1, ts=1700000000, nonce=…, sig=<hex>
    sig = HMAC-SHA256(secret, "METHOD\\npath?query\\nts\\nnonce\\nsha256hex(body)\\nnode")

The key id names one key of the agents' keyring (``persys.security.keyring``): during a rotation verifiers
accept the old and the new key while signers switch from one to the other. An agent refuses a request
signed for another node. A request without ``node=`` (and without
the last line in the signed string) is still accepted from signers that predate the field;
Persys's own clients (``AgentClient``) always sign the node they mean to call.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from persys.errors import Unauthorized
from persys.security.keyring import HmacKey, Keyring

SCHEME = "PERSYS-HMAC-SHA256"
_FIELDS = ("keyId", "ts", "nonce", "sig")  # required; ``node`` is optional (see the module docstring)
_PAIR = re.compile(r"^\s*(keyId|node|ts|nonce|sig)=([^\s,=]+)\s*$")


def string_to_sign(method: str, path_qs: str, ts: int, nonce: str, body: bytes, *, node: str = "") -> bytes:
    """The canonical text the signature covers (the node as a last line when the request names one)."""
    digest = hashlib.sha256(body).hexdigest()
    text = f"{method.upper()}\n{path_qs}\n{ts}\n{nonce}\n{digest}"
    return (f"{text}\n{node}" if node else text).encode()


def signature(secret: bytes, method: str, path_qs: str, ts: int, nonce: str, body: bytes, *, node: str = "") -> str:
    text = string_to_sign(method, path_qs, ts, nonce, body, node=node)
    return hmac.new(secret, text, hashlib.sha256).hexdigest()


def sign(method: str, path_qs: str, body: bytes, key_id: str, secret: bytes, *,
         ts: int | None = None, nonce: str | None = None, node: str = "") -> str:
    """The ``Authorization`` header value for one request to ``node`` (fresh timestamp and nonce by default)."""
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or _secrets.token_hex(16)
    sig = signature(secret, method, path_qs, ts, nonce, body, node=node)
    target = f" node={node}," if node else ""
    return f"{SCHEME} keyId={key_id},{target} ts={ts}, nonce={nonce}, sig={sig}"


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
    """Checks signed requests against the keys its keyring accepts now, by key id.

    ``keyring`` may be replaced at any time (the agent re-reads it during rotations).
    """

    def __init__(self, secrets: Mapping[str, bytes] | Keyring, max_skew: int = 300, nonce_cache_size: int = 100_000,
                 clock: Callable[[], float] = time.time, *, node: str = "") -> None:
        self.keyring = secrets if isinstance(secrets, Keyring) else Keyring(
            tuple(HmacKey(key_id, secret) for key_id, secret in secrets.items()))
        self.node = node  # this agent's node: requests signed for another node are refused
        self.max_skew = max_skew
        self.clock = clock
        # a nonce only needs remembering while its timestamp is acceptable: twice the skew
        self.nonces = NonceCache(ttl=2 * max_skew, size=nonce_cache_size, clock=clock)

    def verify(self, method: str, path_qs: str, body: bytes, header: str | None) -> str:
        """The caller's key id; raises Unauthorized naming why the request is refused."""
        if not header:
            raise Unauthorized("missing Authorization header")
        fields = parse_header(header)
        secret = self.keyring.accepted(self.clock()).get(fields["keyId"])
        if secret is None:
            known = any(k.id == fields["keyId"] for k in self.keyring.keys)
            raise Unauthorized(f"{'expired' if known else 'unknown'} key id {fields['keyId']!r}")
        ts = int(fields["ts"])
        skew = abs(self.clock() - ts)
        if skew > self.max_skew:
            raise Unauthorized(f"clock skew of {int(skew)}s exceeds {self.max_skew}s")
        node = fields.get("node", "")
        if node and self.node and node != self.node:
            raise Unauthorized(f"request is signed for node {node!r}, this is node {self.node!r}")
        expected = signature(secret, method, path_qs, ts, fields["nonce"], body, node=node)
        if not hmac.compare_digest(expected, fields["sig"]):
            raise Unauthorized("bad signature")
        # checked after the signature, so that forged requests cannot fill the cache
        if not self.nonces.add(f"{fields['keyId']}:{fields['nonce']}"):
            raise Unauthorized("reused nonce")
        return fields["keyId"]
