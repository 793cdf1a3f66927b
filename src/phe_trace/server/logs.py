"""Structured JSON logs: one object per line, event name plus counts — no key material.

Log calls pass an event name and a few safe fields (``extra={"fields": {...}}``); the
formatter never prints request bodies, keys, tokens, addresses or user agents.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "configure_logging", "log_event"]

LOGGER = logging.getLogger("phe_trace.server")


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


def configure_logging(level: str = "INFO") -> None:
    """Send phe_trace.server logs as JSON lines to stderr (idempotent)."""
    LOGGER.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in LOGGER.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        LOGGER.addHandler(handler)
    LOGGER.propagate = False


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with safe scalar ``fields`` (counts, codes, durations)."""
    LOGGER.log(level, event, extra={"fields": fields})
