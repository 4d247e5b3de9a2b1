"""The agents' HMAC keyring for admins: what it holds now, and rotating it.

- ``GET /hmac-keyring``: each key's id, ``signFrom``, ``expires`` and ``state`` now (``signing``, ``next``,
  ``previous``, ``expired``), never a secret.
- ``POST /hmac-keyring/rotate`` with ``{"overlapSeconds": N}`` (default ``DEFAULT_OVERLAP``): a new key,
  accepted by agents at once, signing from N seconds on; the keys before it expire after 2N
  (``persys.security.keyring``). The answer is the keyring as ``GET`` shows it.

Both are for admins only: the secrets never leave etcd, the API servers, controllers and agents.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from persys.api.auth import ADMINS, allow
from persys.api.context import api_context
from persys.errors import Cause, Invalid
from persys.httpedge import read_json
from persys.security.keyring import Keyring

PATH = "/hmac-keyring"
DEFAULT_OVERLAP = 600.0


def _shown(keyring: Keyring) -> dict[str, Any]:
    return {"kind": "HmacKeyring", **keyring.to_dict(with_secrets=False, now=time.time())}


@allow(ADMINS)
async def show(request: web.Request) -> web.Response:
    """The agents' HMAC keys (no secrets): which signs now, which is next, which expire when."""
    return web.json_response(_shown(await api_context(request).hmac_keys.refresh()))


@allow(ADMINS)
async def rotate(request: web.Request) -> web.Response:
    """Add a new HMAC key that signs after ``overlapSeconds``; older keys expire after twice that (201)."""
    body = await read_json(request)
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise Invalid("body must be a mapping: {\"overlapSeconds\": N}", causes=[Cause("", "must be a mapping")])
    overlap = body.get("overlapSeconds", DEFAULT_OVERLAP)
    if isinstance(overlap, bool) or not isinstance(overlap, int | float):
        raise Invalid(f"overlapSeconds must be a number of seconds, not {overlap!r}",
                      causes=[Cause("overlapSeconds", "must be a number")])
    keyring = await api_context(request).hmac_keys.rotate(float(overlap))
    return web.json_response(_shown(keyring), status=201)


ROUTES = [
    ("GET", PATH, show),
    ("POST", PATH + "/rotate", rotate),
]
