"""structlog configuration for the extractor: console lines on a terminal, JSON otherwise."""

from __future__ import annotations

import logging
import sys

import structlog

from extractor.settings import LogFormat, LogLevel


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    """A logger on whatever ``sys.stderr`` is now (it may be replaced after configuration)."""
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(level: LogLevel, fmt: LogFormat) -> None:
    """Log to stderr at ``level``; ``auto`` picks console on a terminal and JSON elsewhere."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
