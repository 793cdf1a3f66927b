"""Three agents on a bumble link, one reports positive through the real services.

The key server (``phe_trace.server``) and the verification service
(``phe_trace.verification``) each run on a real uvicorn loopback port; the agents talk to
them only over HTTP with the GAEN wire formats. The contact day is yesterday in real
time, because certificates and key ages are checked against the services' clocks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from phe_trace.agent import Agent, ReportError
from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext, create_app, load_settings, register_health_authority
from phe_trace.server import run_export as run_key_export
from phe_trace.serving import serve
from phe_trace.verification import VerificationService, VerificationSettings
from phe_trace.verification import create_app as create_verification_app
from phe_trace.verification.models import User

from .reference import ref_rpi
from .scenario import run_bumble_day

ISSUER, AUDIENCE = "phe-trace-verification", "phe-trace-keyserver"


@dataclass
class Services:
    keyserver_url: str
    verification_url: str
    api_key: str
    service: VerificationService
    context: ServerContext
    export_key_pem: Path
    clock: SettableClock
    worker: User

    def issue(self, test_type: str, day: dt.date) -> str:
        return self.service.issue_code(self.worker, test_type, day, day).code

    def export(self, at: float) -> None:
        self.clock.t = at
        run_key_export(self.context, at)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    verification = VerificationService(
        VerificationSettings(
            data_dir=tmp_path / "vf",
            database_url=f"sqlite:///{tmp_path / 'vf.sqlite3'}",
            secret="0123456789abcdef0123456789abcdef-secret",
            issuer=ISSUER,
            audience=AUDIENCE,
            response_padding=False,
            # The key server's clock runs hours ahead in this test (exports are cut
            # after the fact); certificates stay valid for a day.
            certificate_minutes=24 * 60,
        )
    )
    realm = verification.accounts.create_realm("device-apps")
    _, api_key = verification.accounts.create_api_key(realm.id, "agent", "test")
    worker = verification.accounts.create_user(
        realm.id, "worker", "a-long-worker-password-1", is_admin=False, actor="test"
    )
    clock = SettableClock(time.time())
    settings = load_settings(
        data_dir=tmp_path / "ks",
        database_url=f"sqlite:///{tmp_path / 'ks.sqlite3'}",
        export_min_records=0,
        export_min_window_age_seconds=0,
        region="ZZ",
        chaff_max_delay_ms=0,
    )
    context = ServerContext.open(settings, clock=clock)
    with serve(create_verification_app(service=verification)) as vf_url:
        register_health_authority(
            context.engine,
            issuer=ISSUER,
            audience=AUDIENCE,
            name="Test HA",
            jwks_url=f"{vf_url}/.well-known/jwks.json",
        )
        with serve(create_app(context=context)) as ks_url:
            pem = tmp_path / "export-signing-key.pem"
            pem.write_bytes(httpx.get(f"{ks_url}/v1/exports/signing-key.pem").content)
            yield Services(ks_url, vf_url, api_key, verification, context, pem, clock, worker)
    context.close()
    verification.close()


def _connect(agent: Agent, s: Services) -> None:
    agent.config = agent.config.model_copy(
        update={
            "key_server_url": s.keyserver_url,
            "verification_url": s.verification_url,
            "verification_api_key": s.api_key,
            "export_public_keys": str(s.export_key_pem),
            "download_backoff_s": 0.0,
            "desktop_notifications": False,
        }
    )


def _expected_normalized(agent: Agent, reporter: Agent, day_start: float, trv: float) -> float:
    """CWA by hand: windows of the reporter's key, one per hourly scan window heard.

    The first scan instance of the key counts 120 s (2 min: below the 5-minute filter, so
    its window is dropped); each later one 300 s (an hour since the previous, capped at
    5 min). Attenuation = -25 dBm − (−59 dBm) = 34 dB → weight 0.8.
    """
    [key] = [
        k for k in reporter.store.teks() if k.rolling_start_interval_number == int(day_start // 600)
    ]
    rpis = {ref_rpi(key.key_data, key.rolling_start_interval_number + j) for j in range(144)}
    hours = {int(s.unix_time // 3600) for s in agent.store.sightings() if s.rpi in rpis}
    assert len(hours) >= 12
    assert {s.rssi_mean for s in agent.store.sightings() if s.rpi in rpis} == {-59}
    value = trv * 0.8 * 300 * (len(hours) - 1) / 60
    return float(f"{value + 1e-9:.1f}")


def test_report_then_others_match_and_reach_the_expected_risk(
    tmp_path: Path, services: Services
) -> None:
    """(SPEC AGENT-15, AGENT-16, AGENT-17, AGENT-18, AGENT-19)"""
    now = time.time()
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    yesterday = today - dt.timedelta(days=1)
    day_start = float((int(now) // 86400 - 1) * 86400)
    agents = asyncio.run(
        run_bumble_day(
            tmp_path,
            {"a": (0.0, 0.0), "b": (1.5, 0.0), "c": (0.0, 1.5)},
            start=day_start,
            pinned={("c", "a"): -105},  # c heard a only very faintly (80 dB)
        )
    )
    a, b, c = agents["a"], agents["b"], agents["c"]
    try:
        for agent in agents.values():
            _connect(agent, services)
        # a reports a likely (clinical) diagnosis with onset yesterday.
        code = services.issue("likely", yesterday)
        with httpx.Client(timeout=30) as client:
            first = a.report(code, now, client)
            assert first.keys_sent == 2  # yesterday's and today's key
            assert first.revision_token
            services.export(now + 2 * 3600)
            for agent in (a, b, c):
                agent.sync(now + 2 * 3600, client)
        # likely → CONFIRMED_CLINICAL_DIAGNOSIS (offset 4) + HIGH infectiousness (onset
        # yesterday, +2): TRL 6 → 1.2.
        expected = _expected_normalized(b, a, day_start, 1.2)
        status_b = b.status(now + 2 * 3600)
        assert status_b["risk_level"] == "high"
        assert status_b["last_exposure_day"] == yesterday.isoformat()
        assert b.sync(now + 2 * 3600 + 60, None).days == {yesterday.isoformat(): ("high", expected)}
        # c matched a's key but at 80 dB no window counts: low, no exposure day.
        assert c.store.get_meta("matches")["items"]
        assert c.status(now + 2 * 3600)["risk_level"] == "low"
        assert c.status(now + 2 * 3600)["last_exposure_day"] is None
        # The reporter never matches itself.
        assert (a.store.get_meta("matches") or {}).get("items", []) == []
        assert a.status(now + 2 * 3600)["last_exposure_day"] is None
        # The test is confirmed: a revises its report with the kept revision token.
        confirm = services.issue("confirmed", yesterday)
        with httpx.Client(timeout=30) as client:
            services.clock.t = now + 3 * 3600
            revised = a.revise(confirm, now + 3 * 3600, client)
            assert revised.revision_token and revised.revision_token != first.revision_token
            services.export(now + 5 * 3600)
            result = b.sync(now + 5 * 3600, client)
        # CONFIRMED_TEST (offset 6) + 2 → TRL 8 → 1.6, replacing the likely version.
        assert result.days == {
            yesterday.isoformat(): ("high", _expected_normalized(b, a, day_start, 1.6))
        }
        # b never reported: there is nothing to revise, said before any network call.
        with pytest.raises(ReportError, match="nothing to revise"):
            b.revise(services.issue("confirmed", yesterday), now + 4 * 3600)
    finally:
        for agent in agents.values():
            agent.close()
