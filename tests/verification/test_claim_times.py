"""The verification database keeps claim and use times to the hour, and token rows in no
order of claims (VER-16), so it cannot be paired with the key server's uploads."""

from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa

from phe_trace.verification.codes import coarse_expiry
from phe_trace.verification.tables import codes, tokens
from tests.order_stats import kendall_tau

from .conftest import Live

CLAIMS = 100


def test_claim_and_use_times_are_hours_and_token_ids_are_not_in_claim_order(
    live: Live,
) -> None:
    """VER-16: claimed_at, issued_at and used_at are whole hours, the token expiry a whole
    hour, and token ids (SQLite's rowid) do not follow the order of the claims."""
    service = live.service
    day = live.clock.now().date()
    issued = [service.issue_code(live.worker, "confirmed", day, day).code for _ in range(CLAIMS)]
    random.shuffle(issued)  # claims in an order of their own, seconds apart
    claim_order: dict[str, int] = {}
    for position, code in enumerate(issued):
        live.clock.advance(timedelta(seconds=7))
        verified = service.verify(live.api_key, code, None)
        live.clock.advance(timedelta(seconds=3))
        service.codes.claim_token(live.realm.id, verified.token, live.clock.now())
        claim_order[service.keyring.hash_token(verified.token)] = position
    with service.engine.connect() as conn:
        claimed = [r.claimed_at for r in conn.execute(sa.select(codes.c.claimed_at))]
        rows = conn.execute(sa.select(tokens).order_by(tokens.c.id)).all()
    assert len(claimed) == CLAIMS and all(t % 3600 == 0 for t in claimed)
    assert len(rows) == CLAIMS
    for row in rows:
        assert row.issued_at % 3600 == 0 and row.used_at % 3600 == 0
        assert row.expires_at % 3600 == 0
    order = [claim_order[r.token_hash] for r in rows]
    assert abs(kendall_tau(order)) < 0.35, order  # random: sd 0.068 for 100 tokens


def test_a_coarse_expiry_keeps_at_least_half_the_lifetime() -> None:
    """VER-16: the stored expiry is at most one quantum early, never before half the
    lifetime, for lifetimes from a minute to a week."""
    for lifetime in (60, 600, 1800, 3600, 7200, 86400, 7 * 86400):
        for unix in (1_796_000_000 + s for s in (0, 1, 599, 1799, 3599, 3600, 86399)):
            expiry = coarse_expiry(unix, lifetime)
            assert unix + lifetime // 2 <= expiry <= unix + lifetime
            if lifetime >= 7200:
                assert expiry % 3600 == 0
