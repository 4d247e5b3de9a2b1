"""structlog set-up: JSON lines when stderr is not a TTY, readable console output when it is.

Context (request id, workload key, node) is bound with ``structlog.contextvars`` so that
every line logged inside a request or a reconcile carries it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog


def configure(level: str | None = None, *, json_output: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    level_name = (level or os.environ.get("PERSYS_LOG_LEVEL") or "info").upper()
    numeric = getattr(logging, level_name, logging.INFO)
    as_json = (not sys.stderr.isatty()) if json_output is None else json_output
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


def get_logger(component: str) -> Any:
    """A logger bound to ``component`` (api, scheduler, agent, …)."""
    return structlog.get_logger().bind(component=component)
