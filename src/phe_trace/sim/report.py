"""The demo's report: ``report.html``, PNG charts (matplotlib) and ``summary.json``.

The HTML references only the files written next to it; every number in it is also in
``summary.json``. Charts are drawn with the non-interactive ``Agg`` backend.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from .metrics import Metrics
from .runner import SimResult

__all__ = ["CHARTS", "build_summary", "write_report"]

#: Chart files, in the order the report shows them.
CHARTS = ("outbreak.png", "tradeoff.png", "delay.png", "bytes.png")


def build_summary(result: SimResult, metrics: Metrics, parts: dict[str, str]) -> dict[str, Any]:
    """The machine-readable summary of a run (also what the HTML shows)."""
    cfg = result.config
    last = result.days[-1] if result.days else None
    return {
        "config": {
            "people": cfg.people,
            "days": cfg.days,
            "seed": cfg.seed,
            "uptake": cfg.uptake,
            "report_rate": cfg.report_rate,
            "radio": cfg.radio,
            "scan_period_s": cfg.scan_period_s,
            "risk_rule": result.risk_rule,
            "cities": cfg.cities,
        },
        "parts": parts,
        "city": {
            "people": result.city.n,
            "households": result.city.households,
            "app_users": result.city.app_users,
        },
        "outbreak": {
            "infected": last.infected if last else 0,
            "tests": result.tests_total,
            "positives": result.positives_total,
            "reports": len(result.reports),
            "keys_published": sum(result.report_keys.values()),
            "reports_refused": len(result.report_errors),
            "report_errors": result.report_errors[:20],
            "close_contacts": len(result.close_a),
        },
        **metrics.as_dict(),
        "server_storage": result.server_storage,
        "wall_seconds": result.wall_s,
    }


def write_report(
    out: Path,
    result: SimResult,
    metrics: Metrics,
    parts: dict[str, str],
    aggregate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write charts, ``summary.json`` and ``report.html`` into ``out``; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = build_summary(result, metrics, parts)
    summary["aggregate"] = aggregate or {"status": "not available in this build"}
    _outbreak_chart(out / CHARTS[0], metrics)
    _tradeoff_chart(out / CHARTS[1], metrics, result)
    _delay_chart(out / CHARTS[2], metrics)
    _bytes_chart(out / CHARTS[3], metrics)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "report.html").write_text(_html(summary))
    return summary


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _outbreak_chart(path: Path, m: Metrics) -> None:
    d = m.daily
    days = np.arange(len(d["new_infections"]))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(days, d["new_infections"], color="#d9a0a0", label="new infections")
    ax.plot(days, d["positives_cumulative"], "o-", color="#a03030", label="positive tests (cum.)")
    ax.plot(days, np.cumsum(d["reports"]), "s-", color="#305090", label="reports (cum.)")
    ax.plot(
        days, np.cumsum(d["notifications"]), "^-", color="#208040", label="people notified (cum.)"
    )
    ax.set_xlabel("simulated day")
    ax.set_ylabel("people")
    ax.set_title("Outbreak and exposure notifications")
    ax.legend(loc="upper left")
    _save(fig, path)


def _tradeoff_chart(path: Path, m: Metrics, result: SimResult) -> None:
    pts = [p for p in m.tradeoff if p.precision is not None or p.recall is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    th = [p.threshold_db for p in pts]
    ax1.plot(
        th,
        [p.precision if p.precision is not None else np.nan for p in pts],
        "o-",
        label="precision",
    )
    ax1.plot(th, [p.recall if p.recall is not None else np.nan for p in pts], "s-", label="recall")
    for t in result.risk_rule.get("thresholds_db", []):
        ax1.axvline(t, color="grey", linestyle=":", linewidth=1)
    ax1.set_xlabel("attenuation threshold (dB): time below counts (dotted: devices' rule)")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_title("Moving the threshold")
    ax1.legend()
    ax2.plot([p.recall or 0 for p in pts], [p.precision or 0 for p in pts], "o-", color="#555")
    c = m.confusion
    if c.precision is not None and c.recall is not None:
        ax2.plot(
            [c.recall],
            [c.precision],
            "*",
            markersize=16,
            color="#d04020",
            label="configured risk rule",
        )
        ax2.legend()
    ax2.set_xlabel("recall")
    ax2.set_ylabel("precision")
    ax2.set_xlim(-0.02, 1.02)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_title("Precision–recall trade-off")
    _save(fig, path)


def _delay_chart(path: Path, m: Metrics) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    if m.delays_h:
        ax.hist(m.delays_h, bins=min(20, max(3, len(m.delays_h))), color="#4070a0")
    else:
        ax.text(0.5, 0.5, "no notifications of true contacts", ha="center", va="center")
    ax.set_xlabel("hours from positive test result to notification")
    ax.set_ylabel("people")
    ax.set_title("Time to notification")
    _save(fig, path)


def _bytes_chart(path: Path, m: Metrics) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(
        np.arange(len(m.bytes_by_day_mean)), np.array(m.bytes_by_day_mean) / 1024.0, color="#60a060"
    )
    ax.set_xlabel("simulated day")
    ax.set_ylabel("KiB per device (mean)")
    ax.set_title("Downloaded per device per day")
    _save(fig, path)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _values(values: list[int] | None) -> str:
    if values is None:
        return "—"
    return html.escape(str(values[0]) if len(values) == 1 else " ".join(map(str, values)))


def _analytics_html(view: Any) -> str:
    """The released noisy aggregates beside the simulation's true values."""
    if not isinstance(view, dict) or "days" not in view:
        return "<p>Privacy-preserving aggregate statistics: not run with this backend.</p>"
    head = (
        "<tr><th>day</th><th>metric</th><th>released (noisy)</th><th>ε</th>"
        "<th>true (simulation)</th><th>|error|</th></tr>"
    )
    rows = []
    for d in view["days"]:
        for metric, m in d["metrics"].items():
            released = (
                _values(m["released"])
                if m["released"] is not None
                else f"<em>{html.escape(m['status'])}</em>"
            )
            rows.append(
                f"<tr><td>{d['day']} ({html.escape(d['date'])}, {d['devices']} devices)</td>"
                f"<td>{html.escape(metric)}</td><td>{released}</td>"
                f"<td>{_fmt(m.get('epsilon'))}</td><td>{_values(m['true'])}</td>"
                f"<td>{_values(m.get('abs_error'))}</td></tr>"
            )
    meanings = _table(list(view["metrics"].items()))
    mae = _table([(k, v) for k, v in view["mean_abs_error"].items()])
    return (
        f"<p>{html.escape(view['how'])}.</p>"
        f"<p>Minimum batch {view['min_batch_size']}, ε {view['epsilon_per_metric_per_day']} per "
        f"metric and day ({view['epsilon_per_device_per_day']} per device and day over the four "
        f"metrics). {html.escape(view['noise'])}. Why: {html.escape(view['choice'])}. "
        f"{html.escape(view['sharding'])}.</p>"
        f"<p><strong>What the noise means at small counts:</strong> "
        f"{html.escape(str(view.get('small_counts', '')))}.</p>"
        f"{meanings}<p>Histograms list their buckets from 0.</p>"
        f"<table>{head}{''.join(rows)}</table>"
        f"<p>Mean absolute error the noise cost, per metric:</p>{mae}"
    )


def _cross_city_html(c: Any) -> str:
    """Two cities: notifications of people exposed in the other city, and the delay."""
    if not c:
        return ""
    same = c["test_to_notification_hours_same_city"]
    other = c["test_to_notification_hours_other_city"]
    fed = c.get("federation") or {}
    rows = [
        ("commuters", c["commuters"]),
        ("exposed in the other city: should be notified", c["should_notify"]),
        ("notified through a key of the other city", c["notified"]),
        ("true / false positives", f"{c['true_positives']} / {c['false_positives']}"),
        ("false negatives", c["false_negatives"]),
        ("precision", c["precision"]),
        ("recall", c["recall"]),
        ("hours test → notification, median: same city", same["median"]),
        ("… other city", other["median"]),
        ("hours federation adds (difference of the medians)", c["federation_adds_hours_median"]),
        ("federation runs", fed.get("runs")),
        ("keys uploaded per city", fed.get("keys_uploaded")),
        ("keys imported per city", fed.get("keys_imported")),
        (
            "hours publication → import in the other city, median",
            fed.get("publication_to_import_hours_median"),
        ),
    ]
    return (
        "<h2>Across the two cities</h2><p>Should: an eligible close contact with a reporter "
        "of the other city (keys arriving through the federation gateway). Notified: "
        "notified, with a key of the other city among the device's matches.</p>" + _table(rows)
    )


def _html(s: dict[str, Any]) -> str:
    n = s["notifications"]
    b = s["bytes_per_device_per_day"]
    d = s["test_to_notification_hours"]
    parts = _table(list(s["parts"].items()))
    stored = s["server_storage"]
    flagged = stored.get("identity_columns") or []
    storage = _table(
        [
            (name, f"{t['rows']} rows: {', '.join(t['columns'])}")
            for name, t in sorted(stored.get("tables", {}).items())
        ]
        + [("columns that could identify a person", ", ".join(flagged) or "none")]
        + [("export files", len(stored.get("export_files", [])))]
    )
    rest = {k: v for k, v in s["aggregate"].items() if k != "privacy_preserving_analytics"}
    aggregate = html.escape(json.dumps(rest, indent=2, default=str))
    analytics = _analytics_html(s["aggregate"].get("privacy_preserving_analytics"))
    charts = "".join(f'<p><img src="{c}" alt="{c}"></p>' for c in CHARTS)
    cfg = s["config"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>phe-trace demo report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}
pre{{background:#f4f4f4;padding:.6em}}</style></head><body>
<h1>phe-trace demo: a simulated city</h1>
<p>{cfg["people"]} people, {cfg["days"]} days, seed {cfg["seed"]}, uptake {cfg["uptake"]},
report rate {cfg["report_rate"]}, radio {html.escape(cfg["radio"])};
wall time {s["wall_seconds"]:.1f} s.</p>
<h2>What ran for real</h2>{parts}
<h2>Notifications against ground truth</h2>
<p>Ground truth: at least 15 minutes within 2 m on one day with a person who reported
(from simulated distances, not radio measurements).</p>
{
        _table(
            [
                ("should be notified", n["should_notify"]),
                ("notified", n["notified"]),
                ("true positives", n["true_positives"]),
                ("false positives", n["false_positives"]),
                ("… of which met a reporter (near miss)", n["false_positives_near_miss"]),
                ("false negatives", n["false_negatives"]),
                ("precision", n["precision"]),
                ("recall", n["recall"]),
            ]
        )
    }
<p>Scoring rule of the devices:</p><pre>{html.escape(json.dumps(cfg["risk_rule"], indent=1))}</pre>
{_cross_city_html(s.get("cross_city"))}
<h2>Outbreak</h2>
{_table(list(s["outbreak"].items()))}
<h2>Time and bytes</h2>
{
        _table(
            [
                ("hours test → notification, median", d["median"]),
                ("p90", d["p90"]),
                ("bytes per device per day, mean", b["mean"]),
                ("median", b["median"]),
                ("max", b["max"]),
            ]
        )
    }
<h2>Charts</h2>{charts}
<h2>What the server stored</h2>{storage}
<h2>What the health authority sees in aggregate</h2>
{analytics}
<h3>Its own services' counts</h3><pre>{aggregate}</pre>
<p>All numbers: <a href="summary.json">summary.json</a>.</p>
</body></html>
"""
