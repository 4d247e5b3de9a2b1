"""The one error hierarchy of Persys; each class's ``code`` is its HTTP status, the only mapping.

Library errors (aetcd, aiodocker, aiohttp) are wrapped at the boundary with
``raise … from e`` so that callers only ever catch ``PersysError`` subclasses. The API server and
the agent answer every error as ``to_status()`` with the class's ``code`` (``persys.httpedge``);
clients rebuild the error from that body with ``from_status``, which picks the class again by
reason and code, so that no instance ever carries a code of its own.

``TerminalError`` is not part of the hierarchy: it is a controller's "do not retry this key",
wrapping the error that made it so, and means nothing to HTTP (a responder answers it as 500).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One reason an object is invalid, naming the field (``spec.ports[0].containerPort``)."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class PersysError(Exception):
    """Raised for every error Persys itself reports; the base of the hierarchy."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, causes: list[Cause] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.causes: list[Cause] = list(causes or [])

    def to_status(self) -> dict[str, Any]:
        """The Kubernetes-shaped ``Status`` body that the API and the agent answer with."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
        }
        if self.causes:
            body["details"] = {"causes": [c.to_dict() for c in self.causes]}
        return body


class BadRequest(PersysError):
    """Raised when a request body cannot be parsed at all (not JSON, not YAML, wrong shape)."""

    code = 400
    reason = "BadRequest"


class Unauthorized(PersysError):
    """Raised when a caller presents no credentials or credentials that do not verify."""

    code = 401
    reason = "Unauthorized"


class Forbidden(PersysError):
    """Raised when an authenticated caller's role does not allow the request."""

    code = 403
    reason = "Forbidden"


class NotFound(PersysError):
    """Raised when an object, route or container does not exist."""

    code = 404
    reason = "NotFound"


class MethodNotAllowed(PersysError):
    """Raised when a route exists but not for the request's method."""

    code = 405
    reason = "MethodNotAllowed"


class Conflict(PersysError):
    """Raised when an object already exists or its resourceVersion is stale."""

    code = 409
    reason = "Conflict"


class Gone(PersysError):
    """Raised when a watch asks for a revision that etcd has compacted away."""

    code = 410
    reason = "Expired"


class TooLarge(PersysError):
    """Raised when a request body exceeds the size limit."""

    code = 413
    reason = "RequestEntityTooLarge"


class Invalid(PersysError):
    """Raised when an object fails validation; ``causes`` names every bad field."""

    code = 422
    reason = "Invalid"


class Unavailable(PersysError):
    """Raised when a backing service (etcd, an agent, Docker) cannot be reached."""

    code = 503
    reason = "ServiceUnavailable"


class StoreUnavailable(Unavailable):
    """Raised when etcd cannot be reached; calls fail fast until it is back."""


class NotLeader(PersysError):
    """Raised when a fenced write is attempted by a controller that no longer holds the lease."""

    code = 409
    reason = "NotLeader"


class AgentError(PersysError):
    """Raised when a node agent answers with an error or cannot be reached (a bad gateway to the API)."""

    code = 502
    reason = "AgentError"


class RuntimeFailure(PersysError):
    """Raised when the container runtime (Docker, compose, git) fails an operation."""

    code = 500
    reason = "RuntimeFailure"


class TerminalError(Exception):
    """Raised by a reconcile that must not be retried (the framework drops the key); wraps its cause.

    ``TerminalError(e)`` or ``raise TerminalError("why") from e``: either way ``cause`` is ``e``.
    """

    def __init__(self, cause: BaseException | str) -> None:
        super().__init__(cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}")
        if isinstance(cause, BaseException):
            self.__cause__ = cause

    @property
    def cause(self) -> BaseException | None:
        """The error that made this key hopeless (``None`` for a bare message)."""
        return self.__cause__


# The classes a remote Status may name. NotLeader is left out on purpose: another process's lost
# lease is not the caller's, so its 409 reads as a plain Conflict.
_REMOTE: tuple[type[PersysError], ...] = (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, Gone, TooLarge, Invalid,
    RuntimeFailure, AgentError, Unavailable,
)
_BY_REASON = {cls.reason: cls for cls in _REMOTE}
_BY_CODE = {cls.code: cls for cls in _REMOTE if cls.code != PersysError.code}


def error_class(code: int, reason: str = "") -> type[PersysError]:
    """The class a remote error stands for: by its reason, else its code (other 4xx: BadRequest)."""
    found = _BY_REASON.get(reason) or _BY_CODE.get(code)
    if found is not None:
        return found
    return BadRequest if 400 <= code < 500 else PersysError


def from_status(body: dict[str, Any], http_code: int) -> PersysError:
    """Rebuild the error a client received as a ``Status`` body (the inverse of ``to_status``)."""
    code = body.get("code", http_code)
    cls = error_class(code if isinstance(code, int) else http_code, str(body.get("reason", "")))
    causes = [
        Cause(str(c.get("field", "")), str(c.get("message", "")))
        for c in (body.get("details") or {}).get("causes", [])
    ]
    return cls(str(body.get("message", f"HTTP {http_code}")), causes=causes)
