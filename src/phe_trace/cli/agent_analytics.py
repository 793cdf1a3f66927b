"""``phe-trace agent analytics on|off``: take part in the aggregate statistics, or stop.

``on`` fetches the health authority's signed configuration from the key server, checks it
with the pinned export keys, shows the two aggregators and pins them (SPEC AGG-26); run
again after the health authority changes an aggregator's key, to accept the new one.
``off`` stops participation and drops the reports not yet sent (AGG-31).
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

__all__ = ["analytics", "echo_status"]


class Choice(StrEnum):
    on = "on"
    off = "off"


def analytics(
    choice: Annotated[Choice, typer.Argument(help="on: take part; off: stop.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Env file with PHE_TRACE_AGENT_* settings."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the encrypted store and its key live.")
    ] = None,
) -> None:
    """Send daily Prio3 statistics to the health authority's aggregators (opt-in)."""
    from phe_trace.agent import Agent
    from phe_trace.agent import analytics as steps

    from .agent_settings import load_settings

    settings = load_settings(config, data_dir)
    now = time.time()
    agent = Agent.open(settings, now=now)
    try:
        if choice is Choice.off:
            dropped = steps.disable(agent.store)
            typer.echo(f"analytics off: {dropped} report(s) not sent were dropped")
            return
        with httpx.Client(timeout=settings.http_timeout_s, follow_redirects=True) as client:
            published = steps.fetch_config(agent.config, client)
        steps.enable(agent.store, published, now)
    finally:
        agent.close()
    typer.echo("analytics on: daily reports go, sealed, to")
    for role, info in (("leader", published.leader), ("helper", published.helper)):
        typer.echo(f"  {role}: {info.url} (key {info.fingerprint()})")
    for metric, params in sorted(published.metrics.items()):
        typer.echo(
            f"  {metric}: ε {params.epsilon_per_day:g} per day, at most "
            f"{params.budget:g} per {published.budget_period_days} days"
        )


def echo_status(summary: dict[str, Any]) -> None:
    """The analytics lines of ``phe-trace agent status``."""
    a = summary.get("analytics") or {}
    typer.echo(f"statistics:          {'taking part' if a.get('participating') else 'off'}")
    if a.get("participating"):
        spent = ", ".join(
            f"{m} {a['epsilon_spent'].get(m, 0):g}/{b:g}"
            for m, b in sorted(a.get("epsilon_budget", {}).items())
        )
        typer.echo(f"ε spent ({a.get('budget_period_days')} days): {spent}")
        typer.echo(f"reports sent:        {a['reports_sent']} ({a['reports_waiting']} waiting)")
    if a.get("error"):
        typer.echo(f"statistics problem:  {a['error']}")
