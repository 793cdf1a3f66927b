"""Sync: download new exports, verify, match, score, store, notify (AGENT-13 … AGENT-16)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SyncError

if TYPE_CHECKING:
    import httpx

    from .agent import Agent

__all__ = ["SyncResult", "run_sync", "status_summary"]


@dataclass(slots=True)
class SyncResult:
    """What one check for exposures found."""

    files_checked: int = 0
    keys_checked: int = 0
    matched_sightings: int = 0
    risk_level: str = "none"
    rejected_files: list[str] = field(default_factory=list)


def run_sync(agent: Agent, now: float, client: httpx.Client | None) -> SyncResult:
    raise SyncError("sync is not available in this build")


def status_summary(agent: Agent, now: float) -> dict[str, Any]:
    last = agent.store.get_meta("last_check") or {}
    return {"risk_level": last.get("risk_level", "unknown"), "last_check": last.get("at")}
