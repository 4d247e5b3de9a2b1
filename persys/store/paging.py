"""Continue tokens of paged lists, as Kubernetes has them: where the next page starts, and when.

A list asked with ``limit`` reads at most that many keys; the token of the next page holds the
revision the first page read (so every page reads the same snapshot: a consistent list of any
size) and the key after the last one sent. It is opaque to clients (base64url of JSON) and checked
on the way back: a token of another collection, or not a token at all, is a 400 naming
``continue``; once etcd has compacted the token's revision the list is Gone (410), and the client
starts again without a token.
"""

from __future__ import annotations

import base64
import binascii
import json

from persys.errors import BadRequest
from persys.resources.names import SUBDOMAIN_MAX

DEFAULT_PAGE = 500  # keys per page when a token comes without a limit, and what clients ask for
MAX_PAGE = 10_000


def encode(last_key: str, revision: int) -> str:
    """The token of the page after ``last_key`` in the snapshot at ``revision``."""
    raw = json.dumps({"rv": revision, "start": last_key + "\0"}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, prefix: str) -> tuple[str, int]:
    """(the key to start at, the revision to read) of a token for the collection under ``prefix``."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        start, revision = data["start"], data["rv"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise BadRequest("continue: not a token this server gave (list again without it)") from None
    if not isinstance(start, str) or not isinstance(revision, int) or isinstance(revision, bool) or revision < 1 \
            or not start.startswith(prefix):
        raise BadRequest("continue: the token is not one of this collection's (list again without it)")
    return start, revision


def parse_limit(value: str | None) -> int:
    """The ``limit`` query parameter: 0 when absent (no paging), else 1 to MAX_PAGE; BadRequest otherwise."""
    if value is None or value == "":
        return 0
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"limit: must be a whole number from 1 to {MAX_PAGE}, not {value[:40]!r}")
    return int(value)


def parse_name_part(value: str | None) -> str:
    """The ``nameContains`` query parameter: "" when absent, else at most a name's length; BadRequest otherwise."""
    if not value:
        return ""
    if len(value) > SUBDOMAIN_MAX or not value.isprintable():
        raise BadRequest(f"nameContains: must be printable text of at most {SUBDOMAIN_MAX} characters")
    return value
