"""The real server side under the demo: key server + verification service over HTTP.

:class:`LiveBackend` starts, in a temporary directory with SQLite files:

- the key server (``phe_trace.hosting.create_app``: publish, exports, signed batches),
  served by uvicorn on a free loopback port in a background thread;
- the verification service (``phe_trace.verification``), mounted by hosting when the
  build does so, else served by a second uvicorn on its own free port;
- a health authority registered with the key server, whose certificate keys the key
  server fetches from the verification service's JWKS over HTTP;
- a realm, a case worker and an app API key in the verification service;
- a leader and a helper aggregator of the devices' daily Prio3 metrics
  (:class:`phe_trace.sim.aggregates.AggregateView`), each on its own free port.

Every device talks to them over real HTTP through one shared :class:`EdgeCache`, which
plays the CDN in front of the export store: the first device to ask for an export file
gets it from the key server, the others from the cache (invalidated whenever the export
worker writes). It counts the bytes each device downloads.

All roles read one :class:`SimClock`; the export worker runs in-process
(:func:`phe_trace.server.run_export`) when the simulation says so. Nothing sleeps.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from phe_trace.clock import SettableClock as SimClock
from phe_trace.serving import LoopbackServer, ServingError

from .aggregates import AggregateView
from .errors import SimBackendError
from .fleet import Fleet
from .standin import SyncOutcome

__all__ = ["EdgeCache", "LiveBackend", "SimClock", "live_backend_available"]

#: Column-name words that would betray who someone is or where a request came from.
_IDENTITY_HINTS = (
    "ip",
    "addr",
    "address",
    "user",
    "email",
    "phone",
    "device",
    "imei",
    "identity",
    "person",
    "agent",
    "mac",
    "location",
)


def live_backend_available() -> str | None:
    """``None`` when the real key server and agent flows are in this build, else why not."""
    try:
        import phe_trace.agent.report
        import phe_trace.agent.sync
        import phe_trace.hosting
        import phe_trace.server
        import phe_trace.verification  # noqa: F401
    except ImportError as exc:
        return f"not in this build: {exc.name}"
    return None


class EdgeCache(httpx.BaseTransport):
    """A CDN in front of the export store, and the byte counter of every device."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self._cache: dict[str, tuple[int, list[tuple[str, str]], bytes]] = {}
        self.device: int | None = None
        self.bytes_by_device: dict[int, int] = {}
        self.origin_requests = 0
        self.edge_hits = 0

    def invalidate(self) -> None:
        self._cache.clear()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        cacheable = (
            request.method == "GET"
            and "/v1/exports/" in request.url.path
            and "range" not in request.headers
        )
        key = str(request.url)
        hit = self._cache.get(key) if cacheable else None
        if hit is None:
            response = self.inner.handle_request(request)
            try:
                body = response.read()
            finally:
                response.close()
            self.origin_requests += 1
            headers = [
                (k, v)
                for k, v in response.headers.items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
            ]
            hit = (response.status_code, headers, body)
            if cacheable and response.status_code == 200:
                self._cache[key] = hit
        else:
            self.edge_hits += 1
        status, headers, body = hit
        if self.device is not None:
            self.bytes_by_device[self.device] = self.bytes_by_device.get(self.device, 0) + len(body)
        return httpx.Response(status, headers=headers, content=body, request=request)

    def close(self) -> None:
        self.inner.close()


def serve_for_demo(app: Any, servers: list[LoopbackServer]) -> str:
    """Serve ``app`` on a free loopback port, add its server to ``servers``; its URL."""
    server = LoopbackServer(app, lifespan="off", log_level="error", name="demo-server")
    servers.append(server)
    try:
        return server.start()
    except ServingError as exc:
        raise SimBackendError(
            f"the demo's server did not start on a loopback port: {exc}"
        ) from None


def _day_date(day: int, epoch: int) -> date:
    return datetime.fromtimestamp(epoch + day * 86_400, UTC).date()


class LiveBackend:
    """The real key server and verification service (see the module docstring)."""

    real = True

    def __init__(
        self,
        epoch: int,
        export_period_s: int,
        padding_keys: int,
        analytics_min_batch: int = 100,
        analytics_epsilon: float = 1.0,
        *,
        region: str = "ZZ",
        analytics: bool = True,
    ) -> None:
        self.epoch = epoch
        self.region = region
        self._with_analytics = analytics
        self.analytics: AggregateView | None = None
        self._analytics_params = (analytics_min_batch, analytics_epsilon)
        self.clock = SimClock(float(epoch))
        self.tmp = Path(tempfile.mkdtemp(prefix="phe-trace-demo-"))
        self._servers: list[LoopbackServer] = []
        self._client: httpx.Client | None = None
        self.keyserver: Any = None
        self.vservice: Any = None
        try:
            self._start(export_period_s, padding_keys)
        except BaseException:
            self.close()
            raise

    def _start(self, export_period_s: int, padding_keys: int) -> None:
        from phe_trace import hosting
        from phe_trace.server import load_settings
        from phe_trace.verification import VerificationService, VerificationSettings

        self.settings = load_settings(
            data_dir=self.tmp / "keyserver",
            export_period_seconds=export_period_s,
            export_min_window_age_seconds=3600,
            export_min_records=padding_keys,
            export_padding_range=0 if padding_keys == 0 else max(1, padding_keys // 10),
            chaff_max_delay_ms=0,
            analytics_uploads_per_second=0,  # every simulated device uploads at once
            log_level="WARNING",
            region=self.region,
        )
        self.app = hosting.create_app(self.settings, role="all", clock=self.clock)
        self.keyserver = self.app.state.keyserver
        self.url = self._serve(self.app)
        self.vservice = getattr(self.app.state, "verification", None)
        if self.vservice is None:
            from phe_trace.verification import create_app as create_verification_app

            vsettings = VerificationSettings(
                data_dir=self.tmp / "verification",
                secret=SecretStr(secrets.token_urlsafe(32)),
                default_daily_quota=1_000_000,
                verify_rate_limit=1_000_000,
            )
            self.vservice = VerificationService(vsettings, clock=self.clock)
            self.verification_url = self._serve(create_verification_app(service=self.vservice))
            self.mounted = False
        else:
            self.verification_url = self.url
            self.mounted = True
        self._setup_authority()
        min_batch, epsilon = self._analytics_params
        if self._with_analytics:
            self.analytics = AggregateView(
                self.tmp / "aggregators", self.url, self.epoch, self._serve, min_batch, epsilon
            )
        self.edge = EdgeCache(httpx.HTTPTransport())
        self._client = httpx.Client(transport=self.edge, timeout=60.0)
        self.description = (
            f"phe_trace.hosting key server at {self.url} (SQLite in a temporary directory, "
            "removed at the end), "
            "export worker on the simulated clock, verification service "
            + ("mounted by hosting" if self.mounted else f"at {self.verification_url}")
            + "; devices sync, verify signatures, match and score with the real agent"
            + (
                f"; leader aggregator at {self.analytics.leader_url}, "
                f"helper at {self.analytics.helper_url}"
                if self.analytics is not None
                else ""
            )
        )

    def _serve(self, app: Any) -> str:
        return serve_for_demo(app, self._servers)

    def _setup_authority(self) -> None:
        from phe_trace.server import register_health_authority
        from phe_trace.server.signing import load_signing_keys
        from phe_trace.verification import JWKS_PATH

        vs = self.vservice
        accounts = vs.accounts
        keys = load_signing_keys(self.settings.signing_key_dir, self.settings.signing_key_id)
        self.export_key = base64.b64encode(keys[0].public_key_der).decode("ascii")
        realm = accounts.create_realm("demo-city", daily_quota=1_000_000)
        self.realm_id = realm.id
        self.case_worker = accounts.create_user(
            realm.id, "case-worker", secrets.token_urlsafe(16), is_admin=False, actor="demo"
        )
        _, self.api_key = accounts.create_api_key(realm.id, "demo-app", "demo")
        if self.mounted:
            return  # hosting registered its own verification service with the key server
        register_health_authority(
            self.keyserver.engine,
            issuer=vs.settings.issuer,
            audience=vs.settings.audience,
            name="Demo city health authority",
            jwks_url=self.verification_url.rstrip("/") + JWKS_PATH,
            now=self.clock.t,
        )

    @property
    def agent_settings(self) -> dict[str, object]:
        return {
            "key_server_url": self.url,
            "verification_url": self.verification_url,
            "verification_api_key": self.api_key,
            "export_public_keys": self.export_key,
            "region": self.settings.region,
            "download_retries": 1,
            "download_backoff_s": 0.0,
        }

    @property
    def client(self) -> httpx.Client:
        assert self._client is not None
        return self._client

    def report(self, fleet: Fleet, report: Any, now: float) -> int:
        """A case worker issues a code; the person's agent verifies and publishes."""
        self.clock.t = now
        onset = report.onset_day
        today = int((now - self.epoch) // 86_400)
        if onset is not None and not today - 14 <= onset <= today:
            onset = None  # symptoms not (yet) known to the case worker
        issued = self.vservice.issue_code(
            self.case_worker,
            "confirmed",
            _day_date(min(report.test_day, today), self.epoch),
            None if onset is None else _day_date(onset, self.epoch),
        )
        fleet.tick(report.person, now)
        result = fleet.agents[report.person].report(issued.code, now, client=self.client)
        return int(result.keys_sent)

    def export(self, now: float) -> int:
        from phe_trace.server import run_export

        self.clock.t = now
        done = run_export(self.keyserver, now)
        if done.batches_written or done.files_deleted:
            self.edge.invalidate()
        return int(done.keys_exported)

    def sync(self, fleet: Fleet, person: int, now: float) -> SyncOutcome:
        self.clock.t = now
        fleet.tick(person, now)
        before = self.edge.bytes_by_device.get(person, 0)
        self.edge.device = person
        try:
            result = fleet.agents[person].sync(now, client=self.client)
        finally:
            self.edge.device = None
        downloaded = self.edge.bytes_by_device.get(person, 0) - before
        last = result.last_exposure_day
        return SyncOutcome(
            result.risk_level == "high",
            downloaded,
            result.matched_sightings,
            risk_level=2 if result.risk_level == "high" else 1 if result.last_exposure_day else 0,
            last_exposure_day=None
            if last is None
            else (date.fromisoformat(last) - _day_date(0, self.epoch)).days,
        )

    def daily_analytics(self, day: int, agents: list[Any], observations: list[Any]) -> None:
        """Simulated ``day`` ended: the devices' analytics step; ``observations`` the truth."""
        if self.analytics is None:
            return
        if day == 0:
            from phe_trace.server.routers.analytics_config import CONFIG_FILE

            document = self.analytics.config_document(budget_period_days=14)
            (self.settings.data_dir / CONFIG_FILE).write_bytes(document)
        self.clock.t = float(self.epoch + (day + 1) * 86_400)
        self.analytics.day_ended(day, agents, observations, self.client)

    def key_counts(self, end: float) -> dict[str, Any]:
        """The key server's released daily key counts, read from its public endpoint.

        The export run after each day releases it; the last day is released here, as the
        export run just after the end would.
        """
        from phe_trace.server.key_counts import release_key_counts

        self.clock.t = end
        release_key_counts(self.keyserver, end)
        resp = self.client.get(f"{self.url}/v1/statistics/key-counts")
        if resp.status_code != 200:
            raise SimBackendError(f"key counts: HTTP {resp.status_code}")
        body: dict[str, Any] = resp.json()
        return {
            "how": (
                "released by the key server itself after each day (GET /v1/statistics/"
                "key-counts): " + str(body["mechanism"])
            ),
            "small_counts": (
                "the noise is calibrated to one upload of 14 keys, so its standard deviation "
                "is about 40 keys whatever the day's total: a day with no key may be released "
                "as 40 or more, and a released value is only meaningful beside its 95 % "
                "interval"
            ),
            "released": [r["value"] for r in body["releases"]],
            "releases": body["releases"],
        }

    def _collect_analytics(self) -> dict[str, Any]:
        """The devices' last uploads (the day after the run), then the leader's view."""
        assert self.analytics is not None
        self.analytics.flush(self.client)
        return self.analytics.collect()

    def aggregate(self) -> dict[str, Any]:
        """What the health authority sees: per-day counts of its own services, no person."""
        stats = self.vservice.codes.stats(self.realm_id, self.clock.now(), days=60)
        with self.keyserver.engine.connect() as conn:
            from sqlalchemy import inspect, text

            names = inspect(self.keyserver.engine).get_table_names()
            exposures = next((n for n in names if n.endswith("exposures")), None)
            keys = (
                int(conn.execute(text(f'SELECT count(*) FROM "{exposures}"')).scalar_one())  # noqa: S608
                if exposures
                else None
            )
        return {
            "source": "verification service statistics and key server counts",
            "verification_per_day": [
                {
                    "day": d.day.isoformat(),
                    "codes_issued": d.codes_issued,
                    "codes_claimed": d.codes_claimed,
                    "codes_invalid": d.codes_invalid,
                    "tokens_claimed": d.tokens_claimed,
                }
                for d in stats
                if d.codes_issued or d.codes_claimed or d.tokens_claimed
            ],
            "diagnosis_keys_stored": keys,
            "privacy_preserving_analytics": (
                self._collect_analytics() if self.analytics is not None else None
            ),
        }

    def risk_rule(self) -> dict[str, Any]:
        """The agents' scoring configuration (their default: ``exposure.default_config``)."""
        from phe_trace.exposure import default_config

        calc = default_config().risk_calculation
        weights = [
            [w.attenuation_range.min, w.attenuation_range.max, w.weight]
            for w in calc.minutes_at_attenuation_weights
        ]
        high = [
            r.normalized_time_range.min
            for r in calc.normalized_time_per_day_to_risk_level
            if int(r.risk_level) == 2
        ]
        return {
            "source": "the agent's default exposure configuration (phe_trace.exposure)",
            "thresholds_db": sorted({w[1] for w in weights}),
            "minutes_at_attenuation_weights": weights,
            "high_risk_at_normalized_minutes_per_day": high[0] if high else None,
        }

    def storage(self) -> dict[str, Any]:
        """Every table of the key server's database: columns and row counts."""
        from sqlalchemy import inspect, text

        engine = self.keyserver.engine
        tables: dict[str, Any] = {}
        flagged = []
        with engine.connect() as conn:
            for name in inspect(engine).get_table_names():
                columns = [c["name"] for c in inspect(engine).get_columns(name)]
                rows = conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()  # noqa: S608
                tables[name] = {"rows": int(rows), "columns": columns}
                flagged += [
                    f"{name}.{c}"
                    for c in columns
                    if any(h in c.lower().split("_") for h in _IDENTITY_HINTS)
                ]
        return {
            "kind": "key server database (SQLite)",
            "tables": tables,
            "identity_columns": flagged,
            "export_files": sorted(
                str(p.relative_to(self.settings.effective_export_dir))
                for p in self.settings.effective_export_dir.rglob("*")
                if p.is_file()
            ),
            "edge_cache": {
                "origin_requests": self.edge.origin_requests,
                "edge_hits": self.edge.edge_hits,
            },
        }

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.analytics is not None:
            self.analytics.close()
            self.analytics = None
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()
        try:
            if self.keyserver is not None:
                self.keyserver.engine.dispose()
            if self.vservice is not None:
                self.vservice.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
