"""Privacy-preserving aggregate statistics: Prio3 (VDAF), metric encodings, DP releases.

A pure library (layer 1): it imports only ``phe_trace.crypto`` / ``protocol`` and the
standard scientific stack. ``protocol_spec/SPEC.md`` §15, ``protocol_spec/PRIVACY.md``.
"""

from .dp import DEFAULT_EPSILON, DEFAULT_MIN_BATCH_SIZE, dp_key_count
from .errors import AnalyticsError, EncodingError, PrivacyBudgetError, ReportRejectedError
from .field import FIELD64, FIELD128, Field
from .metrics import METRICS, DailyObservation, encode_daily
from .prio3 import (
    DRAFT_VERSION,
    NONCE_SIZE,
    VERIFY_KEY_SIZE,
    HelperShare,
    LeaderShare,
    PrepShare,
    PrepState,
    Prio3,
    prio3_count,
    prio3_histogram,
    prio3_sum,
)
from .reports import (
    SealedReport,
    daily_reports,
    daily_reports_batch,
    make_report,
    make_reports,
    open_share,
    upload_body,
)

__all__ = [
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
    "ReportRejectedError",
    "SealedReport",
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
