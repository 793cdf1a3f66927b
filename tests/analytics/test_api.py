"""The public surface of ``phe_trace.analytics`` is pinned (STYLE: ``__all__`` and a test)."""

from __future__ import annotations

import phe_trace.analytics as analytics


def test_public_names() -> None:
    assert sorted(analytics.__all__) == sorted(
        [
            "DEFAULT_EPSILON",
            "DEFAULT_MIN_BATCH_SIZE",
            "DRAFT_VERSION",
            "FIELD64",
            "FIELD128",
            "METRICS",
            "NONCE_SIZE",
            "VERIFY_KEY_SIZE",
            "AnalyticsError",
            "DailyObservation",
            "EncodingError",
            "Field",
            "HelperShare",
            "LeaderShare",
            "PrepShare",
            "PrepState",
            "Prio3",
            "PrivacyBudgetError",
            "SealedReport",
            "ReportRejectedError",
            "daily_reports",
            "daily_reports_batch",
            "dp_key_count",
            "encode_daily",
            "make_report",
            "make_reports",
            "open_share",
            "prio3_count",
            "prio3_histogram",
            "prio3_sum",
            "upload_body",
        ]
    )
    for name in analytics.__all__:
        assert getattr(analytics, name) is not None


def test_error_codes_are_stable() -> None:
    assert analytics.AnalyticsError.code == "analytics_error"
    assert analytics.EncodingError.code == "analytics_encoding"
    assert analytics.ReportRejectedError.code == "report_rejected"
    assert analytics.PrivacyBudgetError.code == "privacy_budget"
