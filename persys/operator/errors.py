"""What an operator's handler raises to say how its failure should be retried.

These are control flow between a handler and the SDK, like ``persys.errors.TerminalError`` for
a ``Controller``, not errors Persys reports, so they stand outside the ``PersysError`` tree.
Whatever else a handler raises is retried with the work queue's back-off and shown to the user
as a Warning Event and a ``Reconciled=False`` condition; nothing a handler raises ends the process.
"""

from __future__ import annotations


class TemporaryError(Exception):
    """Raised by a handler that should run again after ``delay`` seconds (a dependency not ready yet).

    ``TemporaryError("database not ready", delay=5)``, or just ``TemporaryError(5)``.
    """

    def __init__(self, message: str | float = "", delay: float = 10.0) -> None:
        if isinstance(message, int | float):
            message, delay = "", float(message)
        super().__init__(message or f"retrying in {delay:g}s")
        self.delay = delay


class PermanentError(Exception):
    """Raised by a handler that must not be retried until the object's spec changes (invalid input)."""
