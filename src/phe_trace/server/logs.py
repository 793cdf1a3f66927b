"""The key server's structured log (``phe_trace.server``), in the format of :mod:`phe_trace.logs`.

Log calls pass an event name and a few safe fields: ``log_event("publish", keys=14)``;
nothing of a request body, key, token, address or user agent (SPEC PUB-35).
"""

from __future__ import annotations

from phe_trace.logs import EventLog

__all__ = ["LOGGER_NAME", "log_event"]

LOGGER_NAME = "phe_trace.server"

log_event = EventLog(LOGGER_NAME)
