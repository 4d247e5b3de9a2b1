"""The HTTP edge the API server and the agent share: JSON bodies in, errors out as ``Status``.

Both servers are aiohttp applications that answer every failure the same way, so that lives
here once: ``read_json`` turns a request body into JSON or a ``BadRequest`` / ``TooLarge`` (a
body nested deeper than ``MAX_DEPTH`` is refused before any handler recurses into it);
``error_middleware`` catches what a handler raises, turns aiohttp's own refusals (no route,
wrong method, body too large) into Persys errors, and answers with ``respond``: a ``Status``
body whose code is the error class's ``code``. Anything that is not a ``PersysError``
(``TerminalError`` included) is an internal error: 500, logged, naming only the exception's type.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from persys.errors import BadRequest, MethodNotAllowed, NotFound, PersysError, TooLarge

MAX_DEPTH = 64  # manifests nest about 8 deep; this leaves room and stays far from the recursion limit


def respond(error: BaseException) -> web.Response:
    """The JSON ``Status`` response for ``error``: its class's code, or 500 for a non-Persys error."""
    if not isinstance(error, PersysError):
        error = PersysError(f"internal error: {type(error).__name__}")
    return web.json_response(error.to_status(), status=error.code)


def error_middleware(log: Any, no_route: Callable[[web.Request], str]) -> Middleware:
    """The middleware that answers every failure with ``respond``; ``no_route`` words the 404."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except PersysError as e:
            if e.code >= 500:
                log.warning("request failed", method=request.method, path=request.path, error=e.message)
            return respond(e)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return respond(http_error(e, request, no_route=no_route(request)))
        except ConnectionError:
            raise  # the client went away mid-stream: there is nobody to answer
        except Exception as e:
            log.exception("internal error", method=request.method, path=request.path)
            return respond(e)

    return errors


def http_error(e: web.HTTPException, request: web.Request, *, no_route: str) -> PersysError:
    """The Persys error for an HTTP error aiohttp raised itself; ``no_route`` is the 404's message."""
    if isinstance(e, web.HTTPNotFound):
        return NotFound(no_route)
    if isinstance(e, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(e.allowed_methods))
        return MethodNotAllowed(f"method {e.method} not allowed here; allowed: {allowed}")
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return TooLarge(f"request body exceeds {request.client_max_size} bytes")
    if e.status < 500:
        return BadRequest(e.text or e.reason)
    return PersysError(e.reason)


async def read_json(request: web.Request, what: str = "request body") -> Any:
    """The request's body decoded as JSON; ``None`` when it is empty."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as e:
        raise TooLarge(f"{what} exceeds {request.client_max_size} bytes") from e
    return decode_json(raw, what) if raw.strip() else None


def decode_json(raw: bytes | str, what: str = "request body") -> Any:
    """``raw`` as JSON; ``BadRequest`` when it is not JSON or nests deeper than ``MAX_DEPTH``."""
    try:
        data = json.loads(raw)
    except RecursionError as e:  # the C decoder stops at the interpreter's limit, cleanly
        raise BadRequest(f"{what} nests deeper than {MAX_DEPTH} levels") from e
    except ValueError as e:
        raise BadRequest(f"{what} is not valid JSON: {e}") from e
    if _depth_exceeds(data, MAX_DEPTH):
        raise BadRequest(f"{what} nests deeper than {MAX_DEPTH} levels")
    return data


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests lists and objects more than ``limit`` deep (iterative: no recursion)."""
    level: list[Any] = [data]
    for _ in range(limit):
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not level:
            return False
    return any(isinstance(node, (dict, list)) for node in level)


def is_digits(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits (a resourceVersion, a line count).

    ``str.isdigit()`` alone also takes '²' and '１', which ``int()`` refuses or misreads: a check with it lets
    a ValueError through, and the client gets a 500 for its own mistake."""
    return text.isascii() and text.isdigit()
