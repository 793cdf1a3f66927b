"""Report: verify a code, certify the TEK HMAC, publish the keys (AGENT-17 … AGENT-19)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ReportError

if TYPE_CHECKING:
    import httpx

    from .agent import Agent

__all__ = ["ReportResult", "run_report", "run_revise"]


@dataclass(slots=True)
class ReportResult:
    """What a report or revision published."""

    inserted: int
    revision_token: str


def run_report(
    agent: Agent, code: str, now: float, client: httpx.Client | None, **kwargs: Any
) -> ReportResult:
    raise ReportError("report is not available in this build")


def run_revise(
    agent: Agent, now: float, client: httpx.Client | None, **kwargs: Any
) -> ReportResult:
    raise ReportError("revise is not available in this build")
