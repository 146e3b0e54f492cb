"""structlog for every program: JSON lines, or console lines on a terminal.

Event names are stable strings with key=value fields whose values are plain JSON, never
Python reprs. Libraries' standard-library records go through the same renderer and stream.
"""

from __future__ import annotations

import enum
import logging
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import PurePath
from typing import Any, Literal, TextIO

import structlog

Stream = Literal["stdout", "stderr"]


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: enums by value, sets sorted, paths as text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, PurePath):
        return str(value)
    return value


def plain_values(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """A processor: every field's value as plain JSON data (see :func:`plain`)."""
    for key, value in event_dict.items():
        if not isinstance(value, str | int | float | bool | None):
            event_dict[key] = plain(value)
    return event_dict


def _stream(name: Stream) -> TextIO:
    return sys.stdout if name == "stdout" else sys.stderr


def configure_logging(
    level: str = "INFO",
    fmt: Literal["json", "console", "auto"] = "auto",
    *,
    stream: Stream = "stdout",
    cache: bool = True,
) -> None:
    """Route structlog and the standard library's loggers to ``stream`` at ``level``.

    The stream is looked up per line, so a replaced ``sys.stdout`` (a test's capture) gets
    it. ``cache``: bind loggers once (faster; tests that configure again pass False).
    """
    out = _stream(stream)
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        plain_values,
    ]

    def factory(*_args: object) -> structlog.PrintLogger:
        return structlog.PrintLogger(file=_stream(stream))

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=factory,
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *shared,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelName(level), logging.WARNING))
    # aiormq logs every failed connection attempt itself; the caller's own line (waiting
    # for server, or aio_pika's reconnect line) already says it, with what happens next.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
