"""Device reports: metric encoding, sealing to two aggregators, opening (SPEC AGG-10, 15, 16)."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from phe_trace.analytics.errors import EncodingError, ReportRejectedError
from phe_trace.analytics.metrics import (
    DAYS_BUCKETS,
    METRICS,
    DailyObservation,
    context_for,
    encode_daily,
)
from phe_trace.analytics.reports import daily_reports_batch, make_report, make_reports, open_share

LEADER, HELPER = PrivateKey.generate(), PrivateKey.generate()
VK = bytes(32)


def _keys() -> tuple[bytes, bytes]:
    return bytes(LEADER.public_key), bytes(HELPER.public_key)


def test_encode_daily() -> None:
    quiet = encode_daily(DailyObservation(False, None, None, False))
    assert quiet == {
        "notified": 0,
        "risk_level": 0,
        "days_to_notification": DAYS_BUCKETS - 1,
        "reported_positive": 0,
    }
    exposed = encode_daily(DailyObservation(True, 5, 3, True))
    assert exposed == {
        "notified": 1,
        "risk_level": 5,
        "days_to_notification": 3,
        "reported_positive": 1,
    }
    with pytest.raises(EncodingError):
        encode_daily(DailyObservation(True, 2, None, False))
    with pytest.raises(EncodingError):
        encode_daily(DailyObservation(False, 8, None, False))


@pytest.mark.parametrize(
    "metric,value",
    [("notified", 1), ("risk_level", 6), ("days_to_notification", 13), ("reported_positive", 0)],
)
def test_report_round_trip(metric: str, value: Any) -> None:
    report = make_report(metric, value, 20000, *_keys())
    opened = [
        open_share(bytes(k), i, metric, 20000, box)
        for i, (k, box) in enumerate([(LEADER, report.leader_share), (HELPER, report.helper_share)])
    ]
    vdaf = METRICS[metric].vdaf()
    ctx = context_for(metric, 20000)
    inits = [
        vdaf.prep_init(VK, ctx, i, o.nonce, o.public_share, o.input_share)
        for i, o in enumerate(opened)
    ]
    msg = vdaf.prep_shares_to_prep(ctx, [p for _, p in inits])
    outs = [vdaf.prep_next(s, msg) for s, _ in inits]
    result = vdaf.unshard([vdaf.aggregate([o]) for o in outs], 1)
    expected = (
        value
        if METRICS[metric].length == 1
        else [int(b == value) for b in range(METRICS[metric].length)]
    )
    assert result == expected


def test_opening_fails_opaquely() -> None:
    """AGG-16: wrong key, moved day or metric, tampering: one opaque error."""
    report = make_report("notified", 1, 20000, *_keys())
    cases = [
        (bytes(HELPER), 0, "notified", 20000, report.leader_share),  # wrong key
        (bytes(LEADER), 0, "notified", 20001, report.leader_share),  # moved to another day
        (bytes(LEADER), 0, "reported_positive", 20000, report.leader_share),  # other metric
        (bytes(LEADER), 0, "notified", 20000, report.leader_share[:-1] + b"\0"),  # tampered
        (bytes(LEADER), 1, "notified", 20000, report.leader_share),  # leader box as helper
        (bytes(LEADER), 0, "nope", 20000, report.leader_share),
    ]
    for key, agg_id, metric, day, box in cases:
        with pytest.raises(ReportRejectedError) as info:
            open_share(key, agg_id, metric, day, box)
        assert str(info.value) == "report rejected"


def test_proof_is_bound_to_metric_and_day() -> None:
    """AGG-7: a share proved for one day does not verify under another day's context."""
    report = make_report("notified", 1, 20000, *_keys())
    opened = [
        open_share(bytes(LEADER), 0, "notified", 20000, report.leader_share),
        open_share(bytes(HELPER), 1, "notified", 20000, report.helper_share),
    ]
    vdaf = METRICS["notified"].vdaf()
    ctx = context_for("notified", 20001)
    inits = [
        vdaf.prep_init(VK, ctx, i, o.nonce, o.public_share, o.input_share)
        for i, o in enumerate(opened)
    ]
    with pytest.raises(ReportRejectedError):
        vdaf.prep_shares_to_prep(ctx, [p for _, p in inits])


def test_daily_reports_batch_aggregates_to_the_devices_values() -> None:
    """AGG-9, AGG-10: batched device reports open, verify and sum to the plain totals."""
    observations = [
        DailyObservation(i % 3 == 0, i % 8 or None, (i % 14) if i % 3 == 0 else None, i % 5 == 0)
        for i in range(9)
    ]
    batches = daily_reports_batch(observations, 20000, *_keys())
    assert [[r.metric for r in rs] for rs in batches] == [list(METRICS)] * len(observations)
    nonces = set()
    for metric, spec in METRICS.items():
        vdaf = spec.vdaf()
        ctx = context_for(metric, 20000)
        reports = [r for rs in batches for r in rs if r.metric == metric]
        aggs = [[0] * spec.length, [0] * spec.length]
        for report in reports:
            opened = [
                open_share(bytes(LEADER), 0, metric, 20000, report.leader_share),
                open_share(bytes(HELPER), 1, metric, 20000, report.helper_share),
            ]
            nonces.add(opened[0].nonce)
            inits = [
                vdaf.prep_init(VK, ctx, i, o.nonce, o.public_share, o.input_share)
                for i, o in enumerate(opened)
            ]
            msg = vdaf.prep_shares_to_prep(ctx, [p for _, p in inits])
            for i, (state, _) in enumerate(inits):
                aggs[i] = vdaf.field.vec_add(aggs[i], vdaf.prep_next(state, msg))
        expected = [0] * spec.length
        for obs in observations:
            value = encode_daily(obs)[metric]
            if spec.length == 1:
                expected[0] += value
            else:
                expected[value] += 1
        result = vdaf.unshard(aggs, len(reports))
        assert (result if isinstance(result, list) else [result]) == expected
    assert len(nonces) == 4 * len(observations)  # every report has its own nonce


def test_make_reports_refuses_what_make_report_refuses() -> None:
    with pytest.raises(EncodingError):
        make_reports("nope", [1], 20000, *_keys())
    with pytest.raises(EncodingError):
        make_reports("notified", [1], 2**32, *_keys())
    with pytest.raises(EncodingError):
        make_reports("notified", [0, 1, 2, 1, 0], 20000, *_keys())


def test_opened_share_keeps_the_encoded_shares() -> None:
    """What an aggregator stores is byte for byte what the device put in the box."""
    report = make_report("risk_level", 3, 20000, *_keys())
    vdaf = METRICS["risk_level"].vdaf()
    for agg_id, (key, box) in enumerate(
        [(LEADER, report.leader_share), (HELPER, report.helper_share)]
    ):
        opened = open_share(bytes(key), agg_id, "risk_level", 20000, box)
        assert opened.encoded_public_share == vdaf.encode_public_share(opened.public_share)
        assert opened.encoded_input_share == vdaf.encode_input_share(opened.input_share)


def test_each_share_is_sealed_to_its_aggregator_in_the_specified_layout() -> None:
    """AGG-15: 0x01 ‖ metric id ‖ day (BE) ‖ nonce ‖ len(public) (BE) ‖ public ‖ input share."""
    nonce = bytes(range(16))
    report = make_report("risk_level", 3, 0x01020304, *_keys(), nonce=nonce)
    boxes = {"leader": (LEADER, report.leader_share), "helper": (HELPER, report.helper_share)}
    for index, (key, box) in enumerate(boxes.values()):
        plain = SealedBox(key).decrypt(box)
        assert plain[:6] == bytes([0x01, 2, 0x01, 0x02, 0x03, 0x04])
        assert plain[6:22] == nonce
        public_length = int.from_bytes(plain[22:24], "big")
        opened = open_share(bytes(key), index, "risk_level", 0x01020304, box)
        assert plain[24 : 24 + public_length] == opened.encoded_public_share
        assert plain[24 + public_length :] == opened.encoded_input_share
    with pytest.raises(CryptoError):  # sealed to the leader: the helper cannot open it
        SealedBox(HELPER).decrypt(report.leader_share)
