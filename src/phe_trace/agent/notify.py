"""Telling the person: a log line, and a desktop notification where ``notify-send`` exists."""

from __future__ import annotations

import logging
import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .risk import Assessment

__all__ = ["notification_text", "notify"]

log = logging.getLogger("phe_trace.agent")


def notification_text(assessment: Assessment) -> str:
    """The one-line message for a risk level (no identifiers, no key material)."""
    if assessment.level == "high":
        return (
            "Possible exposure: increased risk "
            f"(most recent contact {assessment.last_exposure_day}). "
            "Follow your health authority's advice."
        )
    return "No increased risk found in the last 14 days."


def notify(assessment: Assessment, *, enabled: bool = True) -> bool:
    """Log the result and show it on the desktop if possible; True if notify-send ran."""
    text = notification_text(assessment)
    log.warning("exposure check: %s", text)
    binary = shutil.which("notify-send") if enabled else None
    if binary is None:
        return False
    try:
        subprocess.run(  # noqa: S603 - fixed binary, fixed arguments
            [binary, "--app-name=phe-trace", "--urgency=critical", "phe-trace", text],
            check=False,
            timeout=5,
            capture_output=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return True
