"""``phe-trace demo``: the simulated city, end to end, with a live display and a report."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

__all__ = ["demo"]


@contextmanager
def _interruptible() -> Iterator[Callable[[], None]]:
    """Make Ctrl-C stop the demo even when it lands somewhere that swallows it.

    Python delivers SIGINT as a ``KeyboardInterrupt`` wherever the main thread happens to
    be; if that is inside a garbage-collector or weakref callback, the interpreter prints
    "Exception ignored" and carries on. The handler therefore also records the signal, the
    returned ``check`` re-raises it at the next simulated day, and such swallowed
    interrupts are not printed (they are not lost: the flag carries them).
    """
    seen = threading.Event()
    previous_handler = signal.getsignal(signal.SIGINT)
    previous_hook = sys.unraisablehook

    def on_sigint(signum: int, frame: object) -> None:
        seen.set()
        raise KeyboardInterrupt

    def quiet_hook(info: sys.UnraisableHookArgs) -> None:
        if info.exc_type is KeyboardInterrupt and seen.is_set():
            return
        previous_hook(info)

    def check() -> None:
        if seen.is_set():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    sys.unraisablehook = quiet_hook
    try:
        yield check
        check()  # an interrupt swallowed during the last day still stops with status 130
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        sys.unraisablehook = previous_hook


def _progress_table(stats: object, days: int) -> Table:
    from phe_trace.sim import DayStats

    assert isinstance(stats, DayStats)
    table = Table(title=f"simulated day {stats.day + 1} of {days}", show_header=True)
    for column in (
        "people",
        "app users",
        "infected",
        "tests",
        "positives",
        "reports",
        "keys published",
        "notified",
        "wall s",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        str(stats.people),
        str(stats.app_users),
        str(stats.infected),
        str(stats.tests),
        str(stats.positives),
        str(stats.reports),
        str(stats.keys_published),
        str(stats.notified),
        f"{stats.wall_s:.1f}",
    )
    return table


def _progress_line(stats: object) -> str:
    from phe_trace.sim import DayStats

    assert isinstance(stats, DayStats)
    return (
        f"day {stats.day + 1}: infected {stats.infected}, tests {stats.tests}, "
        f"positives {stats.positives}, reports {stats.reports}, "
        f"keys published {stats.keys_published}, notified {stats.notified} "
        f"({stats.wall_s:.1f} s)"
    )


def _final_table(summary: dict[str, object]) -> Table:
    n = summary["notifications"]
    b = summary["bytes_per_device_per_day"]
    d = summary["test_to_notification_hours"]
    assert isinstance(n, dict) and isinstance(b, dict) and isinstance(d, dict)
    table = Table(title="Notifications against ground truth (≥ 15 min within 2 m)")
    table.add_column("measure")
    table.add_column("value", justify="right")

    def fmt(v: object) -> str:
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    rows = [
        ("should be notified", n["should_notify"]),
        ("notified", n["notified"]),
        ("true / false positives", f"{n['true_positives']} / {n['false_positives']}"),
        ("false negatives", n["false_negatives"]),
        ("precision", n["precision"]),
        ("recall", n["recall"]),
        ("hours test → notification (median)", d["median"]),
        ("bytes per device per day (mean)", b["mean"]),
    ]
    for k, v in rows:
        table.add_row(k, fmt(v))
    return table


def _cross_city_table(c: object) -> Table:
    assert isinstance(c, dict)
    table = Table(title="People exposed in the other city (keys through the federation)")
    table.add_column("measure")
    table.add_column("value", justify="right")

    def fmt(v: object) -> str:
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    fed = c.get("federation") or {}
    rows = [
        ("commuters", c["commuters"]),
        ("should be notified", c["should_notify"]),
        ("notified through the other city's keys", c["notified"]),
        ("true / false positives", f"{c['true_positives']} / {c['false_positives']}"),
        ("false negatives", c["false_negatives"]),
        ("precision", c["precision"]),
        ("recall", c["recall"]),
        (
            "hours test → notification, same city",
            c["test_to_notification_hours_same_city"]["median"],
        ),
        (
            "hours test → notification, other city",
            c["test_to_notification_hours_other_city"]["median"],
        ),
        ("hours federation adds (median)", c["federation_adds_hours_median"]),
        ("hours publication → other city's import", fed.get("publication_to_import_hours_median")),
    ]
    for k, v in rows:
        table.add_row(k, fmt(v))
    return table


def demo(
    people: Annotated[
        int | None,
        typer.Option(
            help="People in the city (10..20000; default 1000), or in each city with "
            "--cities 2 (default 500).",
            show_default=False,
        ),
    ] = None,
    days: Annotated[int, typer.Option(help="Simulated days (1..60).")] = 14,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same city.")] = 1,
    uptake: Annotated[float, typer.Option(help="Share of people running the app.")] = 0.5,
    report_rate: Annotated[
        float, typer.Option(help="Share of positive app users who report.")
    ] = 0.8,
    out: Annotated[Path, typer.Option(help="Directory for the report.")] = Path("demo-report"),
    radio: Annotated[str, typer.Option(help="Radio backend: sim or bumble.")] = "sim",
    cities: Annotated[
        int,
        typer.Option(
            help="1, or 2: two cities of --people each, federated through a gateway, "
            "with commuters between them."
        ),
    ] = 1,
) -> None:
    """Run a simulated city on this machine, end to end, and write a measured report."""
    from phe_trace.sim import SimConfig, run_demo

    if people is None:
        people = 500 if cities == 2 else 1000
    config = SimConfig.create(
        people=people,
        days=days,
        seed=seed,
        uptake=uptake,
        report_rate=report_rate,
        out=out,
        radio=radio,
        cities=cities,
    )
    console = Console(stderr=False)
    console.print(
        f"phe-trace demo: {people} people"
        + (" in each of 2 federated cities" if cities == 2 else "")
        + f", {days} days, seed {seed} (uptake {uptake}, report rate {report_rate})"
    )
    try:
        with _interruptible() as check:
            if console.is_terminal:
                with Live(console=console, refresh_per_second=4, transient=False) as live:

                    def show(s: object) -> None:
                        check()
                        live.update(_progress_table(s, days))

                    outcome = run_demo(config, show)
            else:  # a log (CI): one plain line per simulated day

                def log(s: object) -> None:
                    check()
                    console.print(_progress_line(s), highlight=False, soft_wrap=True)

                outcome = run_demo(config, log)
    except KeyboardInterrupt:
        print("phe-trace: demo interrupted; servers stopped, nothing left running", file=sys.stderr)
        raise  # the entry point turns it into exit status 130
    console.print(_final_table(outcome.summary))
    if "cross_city" in outcome.summary:
        console.print(_cross_city_table(outcome.summary["cross_city"]))
    parts = outcome.summary["parts"]
    assert isinstance(parts, dict)
    for part, how in parts.items():
        console.print(f"  {part}: {how}", highlight=False, soft_wrap=True)
    console.print(
        f"wall time {outcome.result.wall_s:.1f} s; report: {(out / 'report.html').resolve()}",
        highlight=False,
        soft_wrap=True,  # a path split across lines cannot be copied or clicked
    )
