"""structlog set-up: JSON lines when stderr is not a TTY, readable console output when it is.

Context (request id, workload key, node) is bound with ``structlog.contextvars`` (see
``bound``) so that every line logged inside a request or a reconcile carries it, and every
line logged inside a span carries its ``trace_id`` and ``span_id``, so that logs and traces
of one request can be joined.

Lines go to whatever ``sys.stderr`` is when they are written (not when ``configure`` ran), so
that a CLI run inside a test runner never leaves loggers pointing at a closed stream.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from opentelemetry import trace


def add_trace_ids(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id``/``span_id`` (W3C hex) of the current span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def _stderr_logger(*args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


class _StructlogHandler(logging.Handler):
    """Standard-library records (aiohttp, asyncio) rendered by structlog too: one format per process."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = structlog.get_logger(component=record.name)
            extra: dict[str, Any] = {"exc_info": record.exc_info} if record.exc_info else {}
            logger.log(record.levelno, record.getMessage(), **extra)
        except Exception:
            self.handleError(record)


def configure(level: str | None = None, *, json_output: bool | None = None, default: str = "info") -> None:
    """Configure structlog and the stdlib root logger (idempotent; the last call wins).

    The level is ``level``, else ``$PERSYS_LOG_LEVEL``, else ``default`` (the CLI passes
    ``warning`` so that client commands print only what matters unless asked).
    """
    level_name = (level or os.environ.get("PERSYS_LOG_LEVEL") or default).upper()
    numeric = getattr(logging, level_name, logging.INFO)
    as_json = (not sys.stderr.isatty()) if json_output is None else json_output
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if not any(isinstance(h, _StructlogHandler) for h in root.handlers):
        root.addHandler(_StructlogHandler())
    root.setLevel(max(numeric, logging.WARNING))


def get_logger(component: str) -> Any:
    """A logger bound to ``component`` (api, scheduler, agent, …)."""
    return structlog.get_logger(component=component)  # lazy: honours configure() called after import


@contextmanager
def bound(**context: Any) -> Iterator[None]:
    """Bind ``context`` (request_id, key, node, …) to every line logged inside the block, in this task.

    Tasks created inside the block inherit it (asyncio copies context variables); None values are skipped.
    """
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in context.items() if v is not None}):
        yield
