"""The agents' HMAC keyring: several keys by id, one of them the signing key, rotated with an overlap window.

Rotating at time T with an overlap window W goes in three phases, decided by the clock alone, so that the
holders of the keyring (controllers and API servers sign, agents on other hosts verify) agree without
talking to each other:

1. From T the new key is in the keyring with ``signFrom = T + W``: verifiers accept it as soon as they have
   re-read the keyring; signers still sign with the old key.
2. From T + W signers sign with the new key (the signing key is the newest whose ``signFrom`` has passed).
3. From T + 2W verifiers refuse the old key: rotation set its ``expires`` to T + 2W.

So W must be longer than the slowest holder takes to re-read the keyring, plus the clocks' skew: every
verifier knows the new key before a signer uses it, and every signer has switched before a verifier drops
the old one.

Stored (in etcd, and in an agent's file) as JSON: ``{"keys": [{"id", "secret", "signFrom", "expires"}]}``,
times in unix seconds, ``expires`` null for a key that does not expire yet. A file of one hex line, as
``persys pki init`` writes it, is a keyring of one key, id ``default``. A secret is its text as bytes.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persys.errors import BadRequest, Cause, Invalid

DEFAULT_KEY_ID = "default"
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")  # no space, comma or '=': it goes in the header
SECRET = re.compile(r"[!-~]{1,512}")  # printable ASCII, no space (new keys: 64 hex characters)
MIN_OVERLAP, MAX_OVERLAP = 1.0, 30 * 86400.0


@dataclass(frozen=True)
class HmacKey:
    """One key: it signs from ``sign_from`` and is accepted until ``expires`` (None: no end yet)."""

    id: str
    secret: bytes
    sign_from: float = 0.0
    expires: float | None = None

    def state(self, now: float, signing: str) -> str:
        """``signing``, ``next`` (accepted, signs later), ``previous`` (accepted, signs no more) or ``expired``."""
        if self.expires is not None and now >= self.expires:
            return "expired"
        if self.id == signing:
            return "signing"
        return "next" if self.sign_from > now else "previous"


@dataclass(frozen=True)
class Keyring:
    """The keys, oldest first."""

    keys: tuple[HmacKey, ...]

    @classmethod
    def single(cls, secret: bytes, key_id: str = DEFAULT_KEY_ID) -> Keyring:
        return cls((HmacKey(key_id, secret),))

    def accepted(self, now: float) -> dict[str, bytes]:
        """The secrets verifiers accept at ``now``, by key id."""
        return {k.id: k.secret for k in self.keys if k.expires is None or now < k.expires}

    def signing(self, now: float) -> HmacKey:
        """The key signers use at ``now``: the newest unexpired one whose ``sign_from`` has passed (else the
        earliest to sign: a keyring is never left without a signing key)."""
        live = [k for k in self.keys if k.expires is None or now < k.expires] or list(self.keys)
        started = [k for k in live if k.sign_from <= now]
        if started:
            return max(started, key=lambda k: k.sign_from)
        return min(live, key=lambda k: k.sign_from)

    def rotate(self, now: float, overlap: float, key_id: str | None = None, secret: bytes | None = None) -> Keyring:
        """This keyring with a new key signing from ``now + overlap``; every key without an end expires at
        ``now + 2 × overlap``; keys already expired are dropped."""
        if not MIN_OVERLAP <= overlap <= MAX_OVERLAP:
            raise Invalid(f"the overlap window must be {MIN_OVERLAP:g}s to {MAX_OVERLAP / 86400:g}d, not {overlap:g}s",
                          causes=[Cause("overlapSeconds", f"must be {MIN_OVERLAP:g} to {MAX_OVERLAP:g}")])
        key_id = key_id or time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + _secrets.token_hex(2)
        if any(k.id == key_id for k in self.keys):
            raise Invalid(f"key id {key_id!r} is already in the keyring", causes=[Cause("id", "already used")])
        kept = [k if k.expires is not None else HmacKey(k.id, k.secret, k.sign_from, now + 2 * overlap)
                for k in self.keys if k.expires is None or now < k.expires]
        new = HmacKey(key_id, secret or _secrets.token_hex(32).encode(), now + overlap)
        return Keyring((*kept, new))

    def to_dict(self, *, with_secrets: bool = True, now: float | None = None) -> dict[str, Any]:
        """The stored form; without secrets and with each key's ``state`` at ``now``, what admins are shown."""
        signing = self.signing(now).id if now is not None else ""
        keys = []
        for k in self.keys:
            row: dict[str, Any] = {"id": k.id, **({"secret": k.secret.decode()} if with_secrets else {}),
                                   "signFrom": k.sign_from, "expires": k.expires}
            if now is not None:
                row["state"] = k.state(now, signing)
            keys.append(row)
        return {"keys": keys}

    def render(self) -> str:
        """The text of a keyring file (JSON, one line)."""
        return json.dumps(self.to_dict()) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Keyring:
        """The keyring ``data`` holds; Invalid naming ``source`` and the field when it is not one."""
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list) or not keys:
            raise _invalid(source, "keys", "must be a non-empty list of keys")
        parsed: list[HmacKey] = []
        for i, row in enumerate(keys):
            field = f"keys[{i}]"
            if not isinstance(row, dict):
                raise _invalid(source, field, "must be a mapping with id, secret, signFrom, expires")
            key_id, secret = row.get("id"), row.get("secret")
            if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
                raise _invalid(source, f"{field}.id", "must be 1-63 letters, digits, '.', '_' or '-'")
            if any(k.id == key_id for k in parsed):
                raise _invalid(source, f"{field}.id", f"{key_id!r} appears twice")
            if not isinstance(secret, str) or not SECRET.fullmatch(secret):
                raise _invalid(source, f"{field}.secret", "must be 1-512 printable characters without spaces")
            sign_from, expires = row.get("signFrom", 0), row.get("expires")
            if isinstance(sign_from, bool) or not isinstance(sign_from, int | float) or sign_from < 0:
                raise _invalid(source, f"{field}.signFrom", "must be a unix time in seconds")
            if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
                raise _invalid(source, f"{field}.expires", "must be a unix time in seconds or null")
            parsed.append(HmacKey(key_id, secret.encode(), float(sign_from),
                                  float(expires) if expires is not None else None))
        return cls(tuple(parsed))

    @classmethod
    def parse(cls, text: str, source: str) -> Keyring:
        """A keyring file's text: JSON, or one line of hex (key id ``default``)."""
        stripped = text.strip()
        if not stripped.startswith("{"):
            if not SECRET.fullmatch(stripped):
                raise _invalid(source, "", "must hold one line (the secret, 64 hex characters) or a JSON keyring")
            return cls.single(stripped.encode())
        try:
            data = json.loads(stripped)
        except ValueError as e:
            raise _invalid(source, "", f"is not valid JSON: {e}") from e
        return cls.from_dict(data, source)


def read_keyring(path: Path) -> Keyring:
    """The keyring in the file ``path``; BadRequest when there is none, Invalid naming what is wrong in it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadRequest(f"no HMAC secret at {path}: run `persys pki init` (or pass --hmac-secret)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadRequest(f"cannot read the HMAC secret at {path}: {e}") from e
    return Keyring.parse(text, str(path))


def write_keyring(path: Path, keyring: Keyring) -> None:
    """Replace the file ``path`` with ``keyring``, owner-only, whole or not at all (agents sharing a file
    each write a partial file of their own)."""
    partial = path.with_name(f"{path.name}.{os.getpid()}-{_secrets.token_hex(4)}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(keyring.render())
    partial.replace(path)


def _invalid(source: str, field: str, message: str) -> Invalid:
    return Invalid(f"{source}: {field + ' ' if field else ''}{message}", causes=[Cause(field, message)])
