"""The one log format of every role: JSON lines on stderr, an event name and safe fields.

Every phe-trace logger sits under ``phe_trace`` (``phe_trace.server``,
``phe_trace.verification``, ``phe_trace.aggregator``, ``phe_trace.gateway``,
``phe_trace.agent``). :func:`configure_logging` gives that tree one handler, writing each
record as one JSON object per line to whatever ``sys.stderr`` is at the time, and sets the
level of one role's logger; each role calls it where it is put together (``create_app``
of a service, ``agent run``), so a process that hosts several roles still writes one
stream in one format.

A line is ``{"ts", "level", "logger", "event", ...fields}``. Services log an event name
with a few safe fields through an :class:`EventLog` (counts, stable error codes, durations,
exception class names); the formatter adds an exception's class name, never its message
or traceback, since either may quote what a request carried. Nothing that identifies a
person or a connection is logged: no key material, code, token, certificate, password,
account name, IP address or user agent (SPEC PUB-35, VER-17, SEAL-4).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["ROOT_LOGGER", "EventLog", "JsonFormatter", "configure_logging"]

#: The logger above every phe-trace logger.
ROOT_LOGGER = "phe_trace"


class JsonFormatter(logging.Formatter):
    """Formats records as ``{"ts", "level", "logger", "event", ...fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, separators=(",", ":"), default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(logger: str = ROOT_LOGGER, level: str | int = "INFO") -> None:
    """Write every phe-trace record as a JSON line to stderr; ``logger`` logs at ``level``.

    Idempotent: the ``phe_trace`` logger gets one JSON handler however often this runs
    (and does not pass its records on to the root logger, so none is written twice).
    """
    root = logging.getLogger(ROOT_LOGGER)
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.propagate = False
    logging.getLogger(logger).setLevel(level)


class EventLog:
    """A role's structured log: ``log("publish", keys=14)`` is one JSON line."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def __call__(
        self, event: str, level: int = logging.INFO, *, exc_info: bool = False, **fields: Any
    ) -> None:
        """Log ``event`` with safe scalar ``fields`` (counts, codes, durations)."""
        self.logger.log(level, event, exc_info=exc_info, extra={"fields": fields})
