"""Property tests of the publish rules: any input is refused cleanly or keeps only valid keys."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from phe_trace.protocol.diagnosis_key import ReportType
from phe_trace.server.errors import BadRequestError
from phe_trace.server.validation import PublishRules, UploadedKey, validate_keys

NOW = 1_795_000_000
NOW_INTERVAL = NOW // 600
RULES = PublishRules()

keys = st.builds(
    UploadedKey,
    key_data=st.binary(min_size=0, max_size=20),
    rolling_start_interval_number=st.integers(NOW_INTERVAL - 144 * 20, NOW_INTERVAL + 300),
    rolling_period=st.integers(0, 200),
    transmission_risk=st.integers(0, 12),
)


@settings(max_examples=300, deadline=None)
@given(
    uploaded=st.lists(keys, min_size=0, max_size=35),
    report=st.sampled_from(list(ReportType)),
    onset=st.none() | st.integers(0, 2**32 - 1),
)
def test_accepted_keys_always_satisfy_the_rules(uploaded, report, onset) -> None:
    """Accepted keys are well-formed, in age, non-overlapping; refusals are 400s (PUB-11..14)."""
    try:
        result = validate_keys(
            uploaded,
            report_type=report,
            request_onset=onset,
            certificate_onset=None,
            now=NOW,
            rules=RULES,
        )
    except BadRequestError:
        return
    assert 1 <= len(result.accepted) <= len(uploaded) <= RULES.max_keys
    assert len(result.accepted) + sum(w.endswith("key dropped") for w in result.warnings) == len(
        uploaded
    )
    oldest = (NOW - RULES.max_interval_age_seconds) // 600
    spans = []
    for item in result.accepted:
        k = item.key
        assert k.check() is None
        assert k.rolling_start_interval_number <= NOW_INTERVAL
        assert k.rolling_start_interval_number + k.rolling_period >= oldest
        assert k.transmission_risk_level != 0 or report in (
            ReportType.UNKNOWN,
            ReportType.RECURSIVE,
        )
        assert item.created_at % 3600 == 0
        if item.embargoed:
            assert item.created_at >= (k.rolling_start_interval_number + k.rolling_period) * 600
        else:
            assert item.created_at <= NOW
        dsos = k.days_since_onset_of_symptoms
        assert dsos is None or abs(dsos) <= RULES.max_symptom_onset_days
        spans.append((k.rolling_start_interval_number, k.rolling_period))
    spans.sort()
    for (s1, p1), (s2, _) in itertools.pairwise(spans):
        assert s1 == s2 or s2 >= s1 + p1
