"""The one log format of every role: JSON lines on stderr, an event name and safe fields.

Every phe-trace logger sits under ``phe_trace`` (``phe_trace.server``,
``phe_trace.verification``, ``phe_trace.aggregator``, ``phe_trace.gateway``,
``phe_trace.agent``). :func:`configure_logging` gives that tree one handler, writing each
record as one JSON object per line to whatever ``sys.stderr`` is at the time, and sets the
level of one role's logger; each role calls it where it is put together (``create_app``
of a service, ``agent run``), so a process that hosts several roles still writes one
stream in one format. uvicorn's own records (``uvicorn.error``: start-up failures, invalid
requests, errors of the application) go through the same handler, so every line a role's
server writes is one JSON object; its access log (``uvicorn.access``), whose lines carry
the client's address, is off (``phe_trace.serving.SERVER_OPTIONS``) and never reaches
the handler.

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

__all__ = ["ROOT_LOGGER", "UVICORN_LOGGER", "EventLog", "JsonFormatter", "configure_logging"]

#: The logger above every phe-trace logger.
ROOT_LOGGER = "phe_trace"
#: The logger above uvicorn's (``uvicorn.error``, ``uvicorn.asgi``, ``uvicorn.access``).
UVICORN_LOGGER = "uvicorn"
#: uvicorn's access log: a line per request with the client's address and port.
_ACCESS_LOGGER = "uvicorn.access"


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
    """Write every phe-trace and uvicorn record as a JSON line to stderr; ``logger`` logs
    at ``level``.

    Idempotent: the ``phe_trace`` and ``uvicorn`` loggers share one JSON handler however
    often this runs (and do not pass their records on to the root logger, so none is
    written twice). uvicorn's access log passes nothing on, whether uvicorn writes it or
    not: no client address reaches the handler.
    """
    handler = _json_handler()
    for name in (ROOT_LOGGER, UVICORN_LOGGER):
        log = logging.getLogger(name)
        if not any(isinstance(h.formatter, JsonFormatter) for h in log.handlers):
            log.addHandler(handler)
        log.propagate = False
    logging.getLogger(_ACCESS_LOGGER).propagate = False
    logging.getLogger(logger).setLevel(level)


def _json_handler() -> logging.Handler:
    """The one JSON handler (the ``phe_trace`` logger's, made on first use)."""
    root = logging.getLogger(ROOT_LOGGER)
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            return handler
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    return handler


class EventLog:
    """A role's structured log: ``log("publish", keys=14)`` is one JSON line."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def __call__(
        self, event: str, level: int = logging.INFO, *, exc_info: bool = False, **fields: Any
    ) -> None:
        """Log ``event`` with safe scalar ``fields`` (counts, codes, durations)."""
        self.logger.log(level, event, exc_info=exc_info, extra={"fields": fields})
