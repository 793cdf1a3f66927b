"""A small bar chart of codes issued and claimed per day, as inline SVG (no JS, no CSS)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ..models import DayStats

__all__ = ["stats_svg"]

_W, _H = 640, 200
_LEFT, _BOTTOM, _TOP = 36, 24, 24
_ISSUED, _CLAIMED = "#3b6ea5", "#7fb069"


def stats_svg(days: Sequence[DayStats]) -> str:
    """SVG markup: per day an issued bar and a claimed bar, with a y-axis maximum."""
    peak = max([1, *(max(d.codes_issued, d.codes_claimed) for d in days)])
    plot_w, plot_h = _W - _LEFT - 8, _H - _BOTTOM - _TOP
    slot = plot_w / max(len(days), 1)
    bar = max(slot / 2 - 1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="Codes issued and claimed per day">',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_W - 8}" y2="{_TOP + plot_h}" '
        'stroke="#888" stroke-width="1"/>',
        f'<text x="{_LEFT - 4}" y="{_TOP + 4}" font-size="10" text-anchor="end">{peak}</text>',
        f'<text x="{_LEFT - 4}" y="{_TOP + plot_h}" font-size="10" text-anchor="end">0</text>',
    ]
    for i, d in enumerate(days):
        x = _LEFT + i * slot
        for j, (value, color, label) in enumerate(
            ((d.codes_issued, _ISSUED, "issued"), (d.codes_claimed, _CLAIMED, "claimed"))
        ):
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{_TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{escape(d.day.isoformat())}: '
                f"{value} {label}</title></rect>"
            )
        last = len(days) - 1
        if (i % 7 == 0 and last - i >= 4) or i == last:
            parts.append(
                f'<text x="{x + bar:.1f}" y="{_H - 8}" font-size="10" text-anchor="middle">'
                f"{escape(d.day.strftime('%m-%d'))}</text>"
            )
    parts.append(
        f'<rect x="{_W - 150}" y="2" width="10" height="10" fill="{_ISSUED}"/>'
        f'<text x="{_W - 136}" y="11" font-size="10">issued</text>'
        f'<rect x="{_W - 90}" y="2" width="10" height="10" fill="{_CLAIMED}"/>'
        f'<text x="{_W - 76}" y="11" font-size="10">claimed</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
