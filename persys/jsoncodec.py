"""JSON on the hot paths (stored objects read back, API answers, watch lines) through orjson, 3–10× faster
than the standard library's in CPython.

Reading falls back to the standard library for what orjson refuses but an older write may hold (an integer
beyond 64 bits). Writes of user data keep the standard library's ``allow_nan=False`` (``ObjectStore``): orjson
would turn NaN into null without a word, and a NaN must be refused, never stored. ``dumps`` is for data that
came from a store or a schema-checked object, so it holds no NaN.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)
