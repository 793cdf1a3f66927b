"""The verification service's ``GET /metrics``: its daily counts as Prometheus counters.

``protocol_spec/SPEC.md`` VER-14: per realm, codes issued, codes claimed, invalid
verification attempts and certificates issued, summed over the stored UTC days (the
statistics are kept, so each series only grows). Labels carry the realm's name only.
"""

from __future__ import annotations

from .codes import CodeStore

__all__ = ["MEDIA_TYPE", "render_metrics"]

MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_SERIES = (
    ("codes_issued", "phe_trace_verification_codes_issued_total", "Verification codes issued."),
    ("codes_claimed", "phe_trace_verification_codes_claimed_total", "Codes exchanged for a token."),
    (
        "codes_invalid",
        "phe_trace_verification_invalid_attempts_total",
        "Verification attempts refused: code unknown, claimed, expired or of a refused type.",
    ),
    ("tokens_claimed", "phe_trace_verification_certificates_total", "Certificates issued."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_metrics(codes: CodeStore) -> str:
    """The counters in the Prometheus text exposition format 0.0.4."""
    totals = codes.totals()
    lines: list[str] = []
    for column, name, help_text in _SERIES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines += [
            f'{name}{{realm="{_label(realm)}"}} {counts[column]}'
            for realm, counts in sorted(totals.items())
        ]
    return "\n".join(lines) + "\n"
