"""Neither the order nor the physical layout of stored keys follows the uploads (PUB-39).

Whoever holds the key server's database and the verification service's could otherwise
pair the k-th code claim with the k-th upload. Keys are stored in arrival order only
while their ``created_at`` window (an hour) is open; the next export run rewrites each
closed window's keys in random order. The physical order is read the way a dump would
see it: by SQLite's rowid, by PostgreSQL's ctid.
"""

from __future__ import annotations

import base64

import httpx
import sqlalchemy as sa

from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext, run_export
from phe_trace.server.storage.tables import exposures
from tests.order_stats import adjacent_same, kendall_tau

from .helpers import NOW, Authority, day_keys, publish_body

UPLOADS = 60
KEYS_EACH = 3


def _physical(ctx: ServerContext) -> list[tuple[bytes, bool]]:
    position = "ctid" if ctx.engine.dialect.name == "postgresql" else "rowid"
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT key_data, settled FROM ks_exposures ORDER BY {position}")
        )
        return [(bytes(r.key_data), bool(r.settled)) for r in rows]


def _values(ctx: ServerContext) -> set[tuple[object, ...]]:
    with ctx.engine.connect() as conn:
        columns = [c for c in exposures.c if c.name != "settled"]
        return {tuple(r) for r in conn.execute(sa.select(*columns))}


def test_closed_windows_are_rewritten_in_random_order(
    client: httpx.Client, ctx: ServerContext, authority: Authority, clock: SettableClock
) -> None:
    """PUB-39: after the export run that follows a window, stored keys are neither in upload
    order nor grouped by upload, on SQLite (rowid) and PostgreSQL (ctid), values intact."""
    upload_of: dict[bytes, int] = {}
    for upload in range(UPLOADS):
        keys = day_keys(NOW, KEYS_EACH)
        answer = client.post("/v1/publish", json=publish_body(authority, keys, NOW))
        assert answer.status_code == 200, answer.text
        upload_of.update({base64.b64decode(k["key"]): upload for k in keys})
    before = _physical(ctx)
    arrival = [upload_of[key] for key, _ in before]
    assert kendall_tau(arrival) > 0.9  # what a dump shows while the window is open
    values = _values(ctx)

    clock.t = NOW + 3600  # the window of NOW has closed
    run_export(ctx, clock.t)

    after = _physical(ctx)
    assert {key for key, _ in after} == set(upload_of) and len(after) == len(before)
    assert all(settled for _, settled in after)
    order = [upload_of[key] for key, _ in after]
    assert abs(kendall_tau(order)) < 0.3, order  # random: sd 0.05 for 180 keys
    assert adjacent_same(order) < 15, order  # random: about 2; in upload order 120
    assert _values(ctx) == values


def test_an_open_window_is_left_as_it_is(
    client: httpx.Client, ctx: ServerContext, authority: Authority, clock: SettableClock
) -> None:
    """PUB-39: keys of the window still open are not settled yet (their window can grow)."""
    keys = day_keys(NOW, KEYS_EACH)
    assert client.post("/v1/publish", json=publish_body(authority, keys, NOW)).status_code == 200
    run_export(ctx, NOW + 60)
    assert [settled for _, settled in _physical(ctx)] == [False] * KEYS_EACH
