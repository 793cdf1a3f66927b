"""Privacy-preserving aggregate statistics: Prio3 (VDAF), metric encodings, DP releases.

A pure library (layer 1): it imports only ``phe_trace.crypto`` / ``protocol`` and the
standard scientific stack. ``protocol_spec/SPEC.md`` §15, ``protocol_spec/PRIVACY.md``.
"""

from .errors import AnalyticsError, EncodingError, PrivacyBudgetError, VerificationError
from .field import FIELD64, FIELD128, Field
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

__all__ = [
    "DRAFT_VERSION",
    "FIELD64",
    "FIELD128",
    "NONCE_SIZE",
    "VERIFY_KEY_SIZE",
    "AnalyticsError",
    "EncodingError",
    "Field",
    "HelperShare",
    "LeaderShare",
    "PrepShare",
    "PrepState",
    "Prio3",
    "PrivacyBudgetError",
    "VerificationError",
    "prio3_count",
    "prio3_histogram",
    "prio3_sum",
]
