"""structlog set-up: JSON lines when not on a terminal (journald reads them), readable on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog

from inspectd.secrets import redact


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time, so a swapped or closed stream never breaks logging."""

    def write(self, text: str) -> int:
        # a broken log stream must not take an inspection thread down with it: fall back to the process's
        # original stderr, and drop the line only when that is gone too
        for stream in (sys.stderr, sys.__stderr__):
            try:
                return stream.write(text)
            except (ValueError, OSError, AttributeError):
                continue
        return 0

    def flush(self) -> None:
        for stream in (sys.stderr, sys.__stderr__):
            try:
                stream.flush()
                return
            except (ValueError, OSError, AttributeError):
                continue

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class _Redacting:
    """Masks URI credentials and registered secrets in every line before it reaches the stream.

    Every log line (structlog's, a dependency's, a traceback) passes here, so a secret that found its way into
    an exception message or a library's text still never reaches the journal.
    """

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(redact(text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


def configure_logging(
    level: str = "info", fmt: Literal["auto", "json", "console"] = "auto", stream: TextIO | None = None
) -> None:
    """Route structlog (and stdlib logging of our dependencies) to one stream (default stderr) in one format."""
    stream = _Redacting(stream or _CurrentStderr())
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info if use_json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def get_logger(name: str, **context) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to a component name and optional context (camera, part id...)."""
    return structlog.get_logger(name, component=name, **context)
