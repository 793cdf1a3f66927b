"""What the verification service logs (``phe_trace.verification``, JSON lines; SPEC VER-17).

Two kinds of line, neither able to pair a claim with an upload:

- **Portal and account events**, one line each when its transaction commits: every
  audit-log action (``code.issue``, ``user.signin``, ``user.signin_failed``,
  ``user.locked``, ``apikey.create``, …) with the realm's id, and ``user.signin_failed``
  for a name no account has. The audit log already keeps these, with the actor; the log
  line names neither the account nor what was issued.
- **The device API in hourly sums.** A line per request would carry the second a code
  was claimed and a certificate issued, which the database keeps only to the hour
  (VER-16), and stand beside the key server's ``publish`` line of the same person. So
  ``/api/verify`` and ``/api/certificate`` outcomes (``ok`` or the ``errorCode``) are
  counted, and a background thread writes the counts as one ``device_api_hour`` line at
  each full hour of the wall clock (and when the service closes), whatever the requests'
  times. Chaff is not counted. The one exception is ``database_unavailable``, written at
  once: the operator must learn of a failing database, and a failed request stores
  nothing.

No line holds a code, token, API key, certificate, HMAC, password, account name or
address.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from sqlalchemy import Connection

from phe_trace.logs import EventLog, configure_logging

__all__ = [
    "LOGGER_NAME",
    "PENDING",
    "DeviceApiTally",
    "configure",
    "log_event",
    "note",
    "write_noted",
]

LOGGER_NAME = "phe_trace.verification"

log_event = EventLog(LOGGER_NAME)

#: Where a connection keeps the events noted in its open transaction (``conn.info``).
PENDING = "phe_trace_pending_log_events"


def configure(level: str | int = "INFO") -> None:
    """The service's records as JSON lines on stderr, at ``level``."""
    configure_logging(LOGGER_NAME, level)


def note(conn: Connection, action: str, realm_id: int | None) -> None:
    """Log ``action`` once ``conn``'s transaction commits (nothing if it rolls back;
    :func:`phe_trace.verification.database.log_on_commit` watches the engine)."""
    conn.info.setdefault(PENDING, []).append((action, realm_id))


def write_noted(pending: list[tuple[str, int | None]]) -> None:
    """Write the events noted in a transaction that committed (see :func:`note`)."""
    for action, realm_id in pending:
        log_event(action, realm=realm_id)


class DeviceApiTally:
    """Counts of the device API's outcomes, written once an hour (see the module doc)."""

    def __init__(self) -> None:
        self._counts: dict[str, Counter[str]] = {"verify": Counter(), "certificate": Counter()}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, endpoint: str, outcome: str) -> None:
        """One ``/api/<endpoint>`` answer: ``ok`` or its ``errorCode``."""
        with self._lock:
            self._counts[endpoint][outcome] += 1
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._hourly, daemon=True, name="verification-log"
                )
                self._thread.start()

    def flush(self) -> None:
        """Write the counts since the last line as one ``device_api_hour`` line (if any)."""
        with self._lock:
            counts = {name: dict(c) for name, c in self._counts.items() if c}
            for c in self._counts.values():
                c.clear()
        if counts:
            log_event.logger.info("device_api_hour", extra={"fields": counts})

    def close(self) -> None:
        """Stop the hourly thread and write what was counted since its last line."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self.flush()

    def _hourly(self) -> None:
        while not self._stop.wait(3600 - time.time() % 3600):
            try:
                self.flush()
            except Exception:  # a log line must never end the thread
                logging.getLogger(LOGGER_NAME).exception("device_api_hour not written")
