"""Key servers as gateway members: upload own keys, download others', export them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from phe_trace.gateway import create_app
from phe_trace.gateway.service import Gateway
from phe_trace.protocol import efgs
from phe_trace.server import ServerContext
from phe_trace.server.federation import (
    FederationError,
    dsos_from_federation,
    dsos_to_federation,
)
from phe_trace.server.storage.federation_tables import federated_keys
from phe_trace.serving import LoopbackServer
from tests.gateway.cities import City
from tests.gateway.support import NOW, Country

DAY = 86_400


@pytest.fixture
def cities(
    tmp_path: Path, gateway: Gateway, countries: dict[str, Country], operator: Any
) -> Iterator[tuple[City, City, LoopbackServer]]:
    with LoopbackServer(create_app(gateway=gateway)) as server:
        a = City(tmp_path / "a", countries["DE"], server.url, operator.anchor_file)
        b = City(tmp_path / "b", countries["FR"], server.url, operator.anchor_file)
        yield a, b, server
        a.ctx.close()
        b.ctx.close()


def _count(ctx: ServerContext, table: sa.Table) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_keys_of_one_city_reach_the_others_exports_once(
    cities: tuple[City, City, LoopbackServer], gateway: Gateway
) -> None:
    """FED-11, FED-12, FED-13: A's local keys go up in batches the gateway allows (30 here),
    B downloads them, verifies each upload batch through the audit, stores them with their
    origin and exports them; repeated syncs upload and import nothing twice, B never
    uploads A's keys, and A never gets its own keys back."""
    a, b, _ = cities
    keys_a = a.publish(70, NOW)
    keys_b = b.publish(5, NOW)
    up_a, _ = a.sync(NOW)
    assert (up_a.batches, up_a.keys) == (3, 70)
    gateway.form_batches()
    up_b, down_b = b.sync(NOW)
    assert up_b.keys == 5 and down_b.keys_imported == 70 and not down_b.batches_refused
    gateway.form_batches()
    for expected in (5, 0, 0):  # A imports B's keys once; repeated syncs change nothing
        again_a, down_a = a.sync(NOW)
        assert again_a.keys == 0 and down_a.keys_imported == expected
        again_b, down_b = b.sync(NOW)
        assert again_b.keys == 0 and down_b.keys_imported == 0
        gateway.form_batches()
    with b.ctx.engine.connect() as conn:
        origins = dict(
            conn.execute(sa.select(federated_keys.c.key_data, federated_keys.c.origin)).all()
        )
    assert origins == {k: "DE" for k in keys_a}
    later = NOW + 3 * 3600
    exported = b.exported_keys(later)
    assert sorted(k for k in exported if k in set(keys_a)) == sorted(keys_a)
    assert len(set(exported)) == len(exported)
    assert set(keys_b) <= set(exported)
    assert _count(a.ctx, federated_keys) == 5  # A holds B's 5, none of its own came back


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_batch_whose_audit_does_not_verify_is_not_imported(
    cities: tuple[City, City, LoopbackServer], gateway: Gateway
) -> None:
    """FED-12: when the audited signature does not cover the downloaded keys (a key was
    altered in the gateway's store), none of that upload batch's keys is imported."""
    a, b, _ = cities
    a.publish(4, NOW)
    a.sync(NOW)
    gateway.form_batches()
    with gateway.engine.begin() as conn:
        conn.execute(sa.text("UPDATE gw_keys SET transmission_risk_level = 7"))
    _, down = b.sync(NOW)
    assert down.keys_imported == 0 and down.batches_refused == ["20260601-1:DE"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_gateway_outage_leaves_keys_pending_and_a_retry_sends_them_once(
    tmp_path: Path, gateway: Gateway, countries: dict[str, Country], operator: Any
) -> None:
    """FED-11: while the gateway is down an upload fails with a federation error and marks
    nothing; the next run after it is back sends every key once."""
    with LoopbackServer(create_app(gateway=gateway)) as server:
        url = server.url
        a = City(tmp_path / "a", countries["DE"], url, operator.anchor_file)
    a.publish(10, NOW)
    with pytest.raises(FederationError):
        a.sync(NOW)
    with LoopbackServer(create_app(gateway=gateway), port=int(url.rsplit(":", 1)[1])):
        up, _ = a.sync(NOW)
        again, _ = a.sync(NOW)
    assert up.keys == 10 and again.keys == 0
    gateway.form_batches()
    with gateway.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM gw_keys")).scalar_one() == 10
    a.ctx.close()


def test_days_since_onset_translation() -> None:
    """FED-14: known onsets pass, a local unknown onset becomes "no symptom information"
    relative to submission, and federation codes map back to −14..14 or unknown."""
    submitted = 20_000 * DAY
    assert dsos_to_federation(3, 0, submitted) == 3
    assert dsos_to_federation(None, (20_000 - 2) * 144, submitted) == 3998
    assert dsos_to_federation(None, (20_000 - 30) * 144, submitted) == 3986
    assert [dsos_from_federation(v) for v in (-14, 14, 15, 21)] == [-14, 14, None, None]
    assert dsos_from_federation(503) == 3 and dsos_from_federation(497) == -3
    assert [dsos_from_federation(v) for v in (2000, 2995, 3990, 4000, 9999)] == [None] * 5
    assert efgs.TRL_NOT_PROVIDED == 0x7FFFFFFF
