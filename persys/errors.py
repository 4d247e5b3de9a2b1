"""The one error hierarchy of Persys, and the table that maps it to HTTP status codes.

Library errors (aetcd, aiodocker, aiohttp) are wrapped at the boundary with
``raise … from e`` so that callers only ever catch ``PersysError`` subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
        """The Kubernetes-shaped ``Status`` body that the API answers with."""
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


class TerminalError(PersysError):
    """Raised by a reconcile that must not be retried (the framework drops the key)."""


class AgentError(PersysError):
    """Raised when a node agent answers with an error or cannot be reached."""

    code = 502
    reason = "AgentError"


class RuntimeFailure(PersysError):
    """Raised when the container runtime (Docker, compose, git) fails an operation."""

    code = 500
    reason = "RuntimeFailure"


@dataclass
class ErrorTable:
    """Maps error classes to HTTP status codes, most specific class first."""

    entries: list[tuple[type[PersysError], int]] = field(default_factory=list)

    def code_for(self, error: BaseException) -> int:
        for cls, code in self.entries:
            if isinstance(error, cls):
                return code
        return 500


HTTP_CODES = ErrorTable(
    [
        (BadRequest, 400),
        (Unauthorized, 401),
        (Forbidden, 403),
        (NotFound, 404),
        (NotLeader, 409),
        (Conflict, 409),
        (Gone, 410),
        (TooLarge, 413),
        (Invalid, 422),
        (AgentError, 502),
        (Unavailable, 503),
        (PersysError, 500),
    ]
)


_BY_REASON: dict[str, type[PersysError]] = {
    cls.reason: cls
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Gone, TooLarge, Invalid, Unavailable)
}


def from_status(body: dict[str, Any], http_code: int) -> PersysError:
    """Rebuild the error a client received as a ``Status`` body (the inverse of ``to_status``)."""
    cls = _BY_REASON.get(str(body.get("reason", "")), PersysError)
    causes = [
        Cause(str(c.get("field", "")), str(c.get("message", "")))
        for c in (body.get("details") or {}).get("causes", [])
    ]
    error = cls(str(body.get("message", f"HTTP {http_code}")), causes=causes)
    error.code = int(body.get("code", http_code))
    return error
