"""The storage foundation: every role's tables come from its own Alembic migrations, a
database made by the code before them is taken over with its rows, and one
``PHE_TRACE_DATABASE_URL`` moves every role of a process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from phe_trace import storage
from phe_trace.aggregator import storage as agg_storage
from phe_trace.server.analytics_ingest import IngestStore
from phe_trace.server.storage import database as ks_database
from phe_trace.server.storage import tables as ks_tables

DAY = 20_000
SECRET = "a-test-secret-that-is-long-enough-0123456789"


def _ddl(engine: sa.Engine, statements: list[str]) -> None:
    """Run ``statements``, with SQLite's types turned into PostgreSQL's there."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for statement in statements:
            if postgres:
                statement = statement.replace("BLOB", "BYTEA")
            conn.execute(sa.text(statement))


def _schema_drift(engine: sa.Engine, tables: list[sa.Table]) -> list[Any]:
    """What Alembic's autogenerate would still change in ``tables``."""
    declared = sa.MetaData()
    for table in tables:
        table.to_metadata(declared)
    names = set(declared.tables)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"include_name": lambda name, kind, _: kind != "table" or name in names},
        )
        return list(compare_metadata(context, declared))


#: The aggregator's tables as its code made them before it had migrations (metadata
#: create_all at start-up, no version table), here from a version before the
#: (day, metric, status, report_id) index and the withheld table.
_OLD_AGGREGATOR = [
    "CREATE TABLE aggregator_shares (report_id VARCHAR(32) NOT NULL, day INTEGER NOT NULL, "
    "metric VARCHAR(32) NOT NULL, nonce BLOB NOT NULL, public_share BLOB NOT NULL, "
    "input_share BLOB NOT NULL, status INTEGER NOT NULL, out_share BLOB, "
    "PRIMARY KEY (report_id), CONSTRAINT uq_aggregator_nonce UNIQUE (day, metric, nonce))",
    "CREATE INDEX ix_aggregator_day_metric_status ON aggregator_shares (day, metric, status)",
    "CREATE TABLE aggregator_releases (day INTEGER NOT NULL, metric VARCHAR(32) NOT NULL, "
    "report_count INTEGER NOT NULL, epsilon FLOAT NOT NULL, values_json TEXT, "
    "PRIMARY KEY (day, metric))",
    "CREATE TABLE aggregator_fetch_cursors (day INTEGER NOT NULL, metric VARCHAR(32) NOT NULL, "
    '"after" INTEGER NOT NULL, PRIMARY KEY (day, metric))',
    "INSERT INTO aggregator_releases VALUES (20000, 'notified', 150, 1.0, '[3, 147]')",
    "INSERT INTO aggregator_fetch_cursors VALUES (20000, 'notified', 42)",
]


def test_an_aggregator_database_made_before_migrations_is_taken_over(database_url: str) -> None:
    """Old tables without a version table: rows kept, missing table and index added, the
    superseded index dropped, the schema then what the code declares."""
    old = storage.create_engine(database_url)
    _ddl(old, _OLD_AGGREGATOR)
    old.dispose()

    engine = agg_storage.create_engine_for(database_url)
    agg_storage.create_engine_for(database_url).dispose()  # a second start changes nothing
    inspector = sa.inspect(engine)
    assert "aggregator_withheld" in inspector.get_table_names()
    indexes = {i["name"] for i in inspector.get_indexes("aggregator_shares")}
    assert "ix_aggregator_day_metric_status_report" in indexes
    assert "ix_aggregator_day_metric_status" not in indexes
    with engine.connect() as conn:
        version = conn.execute(sa.text(f"SELECT version_num FROM {agg_storage.VERSION_TABLE}"))
        assert version.scalar_one() == "agg0001_initial"
        assert conn.execute(sa.select(agg_storage.releases.c.values_json)).scalar_one() == (
            "[3, 147]"
        )
        assert conn.execute(sa.select(agg_storage.cursors.c.after)).scalar_one() == 42
    assert _schema_drift(engine, list(agg_storage.metadata.tables.values())) == []
    engine.dispose()


def test_a_new_aggregator_database_has_the_declared_schema(database_url: str) -> None:
    engine = agg_storage.create_engine_for(database_url)
    assert _schema_drift(engine, list(agg_storage.metadata.tables.values())) == []
    engine.dispose()


#: The analytics table as the key server's ingest router made it on first use, beside
#: the key server's tables at their previous head (0005).
_OLD_ANALYTICS = [
    "CREATE TABLE analytics_sealed_reports (seq {serial} NOT NULL, "
    "report_id VARCHAR(32) NOT NULL, day INTEGER NOT NULL, metric VARCHAR(32) NOT NULL, "
    "leader_share BLOB NOT NULL, helper_share BLOB NOT NULL, PRIMARY KEY (seq), "
    "UNIQUE (report_id))",
    "CREATE INDEX ix_analytics_day_metric ON analytics_sealed_reports (day, metric, seq)",
]


@pytest.mark.parametrize("made_by_router", [True, False], ids=["table-there", "no-table"])
def test_the_analytics_table_joins_the_key_server_migrations(
    database_url: str, made_by_router: bool
) -> None:
    """A key-server database at the previous head, with or without the ingest table the
    router used to make: after the upgrade the table is there (its rows kept), indexed,
    and the store works on it without making anything itself."""
    engine = ks_database.create_engine_for(database_url)
    ks_database.migrate(engine, "0005_settled_keys")
    if made_by_router:
        serial = "SERIAL" if engine.dialect.name == "postgresql" else "INTEGER"
        _ddl(engine, [s.replace("{serial}", serial) for s in _OLD_ANALYTICS])
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO analytics_sealed_reports "
                    "(report_id, day, metric, leader_share, helper_share) "
                    "VALUES ('r1', :day, 'notified', :leader, :helper)"
                ),
                {"day": DAY, "leader": b"L" * 80, "helper": b"H" * 80},
            )
    assert ("analytics_sealed_reports" in sa.inspect(engine).get_table_names()) is made_by_router

    ks_database.migrate(engine)
    with engine.connect() as conn:
        version = conn.execute(sa.text(f"SELECT version_num FROM {ks_database.VERSION_TABLE}"))
        assert version.scalar_one() == "0006_analytics_sealed_reports"
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("analytics_sealed_reports")}
    assert "ix_analytics_day_metric" in indexes
    assert _schema_drift(engine, [ks_tables.analytics_sealed_reports]) == []

    store = IngestStore(engine, clock=lambda: DAY * 86400.0)
    store.add([(DAY, "notified", b"l" * 80, b"h" * 80)])
    boxes = [box for _, _, box in store.fetch("leader", DAY, "notified", 0, 10)]
    assert boxes == ([b"L" * 80] if made_by_router else []) + [b"l" * 80]
    engine.dispose()


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_one_database_url_puts_the_verification_service_on_postgresql(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only PHE_TRACE_DATABASE_URL set: the verification service keeps its tables in that
    PostgreSQL database, and no SQLite file is made. (SPEC OPS-5)"""
    from phe_trace.verification import VerificationService, VerificationSettings

    monkeypatch.setenv("PHE_TRACE_DATABASE_URL", _plain(postgres_url))
    monkeypatch.delenv("PHE_TRACE_VERIFICATION_DATABASE_URL", raising=False)
    settings = VerificationSettings(data_dir=tmp_path / "data", secret=SECRET)
    service = VerificationService(settings)
    try:
        assert service.engine.dialect.name == "postgresql"
        realm = service.accounts.create_realm("r")
        assert [r.id for r in service.accounts.list_realms()] == [realm.id]
    finally:
        service.close()
    engine = storage.create_engine(postgres_url)
    assert "vf_realms" in sa.inspect(engine).get_table_names()
    engine.dispose()
    assert not list(tmp_path.rglob("*.sqlite3"))


def test_a_roles_own_database_url_overrides_the_common_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PHE_TRACE_DATABASE_URL is the verification service's and an aggregator's database
    unless their own URL is set. (SPEC OPS-5)"""
    from phe_trace.aggregator.settings import AggregatorSettings
    from phe_trace.verification import VerificationSettings

    common = f"sqlite:///{tmp_path / 'common.sqlite3'}"
    own = f"sqlite:///{tmp_path / 'own.sqlite3'}"
    monkeypatch.setenv("PHE_TRACE_DATABASE_URL", common)
    monkeypatch.delenv("PHE_TRACE_AGGREGATOR_DATABASE_URL", raising=False)
    monkeypatch.setenv("PHE_TRACE_VERIFICATION_DATABASE_URL", own)
    assert VerificationSettings().effective_database_url == own
    assert AggregatorSettings().database_url == common
    monkeypatch.setenv("PHE_TRACE_AGGREGATOR_DATABASE_URL", own)
    assert AggregatorSettings().database_url == own
    monkeypatch.delenv("PHE_TRACE_VERIFICATION_DATABASE_URL")
    assert VerificationSettings().effective_database_url == common
    monkeypatch.delenv("PHE_TRACE_DATABASE_URL")
    data = tmp_path / "d"
    assert VerificationSettings(data_dir=data).effective_database_url == (
        f"sqlite:///{data / 'verification.sqlite3'}"
    )


def test_the_gateway_falls_back_to_the_common_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``gateway`` commands without --database-url use PHE_TRACE_DATABASE_URL; with
    neither they refuse in one line. (SPEC OPS-5)"""
    from phe_trace.cli.gateway import _settings
    from phe_trace.gateway.errors import GatewayConfigError

    common = f"sqlite:///{tmp_path / 'common.sqlite3'}"
    own = f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    anchor = tmp_path / "anchor.pem"
    monkeypatch.setenv("PHE_TRACE_DATABASE_URL", common)
    assert _settings(None, anchor).database_url == common
    assert _settings(own, anchor).database_url == own
    monkeypatch.delenv("PHE_TRACE_DATABASE_URL")
    with pytest.raises(GatewayConfigError, match="PHE_TRACE_DATABASE_URL"):
        _settings(None, anchor)


def test_urls_are_normalised_to_psycopg() -> None:
    assert storage.normalize_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert storage.normalize_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert storage.normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_engines_get_each_roles_pragmas(tmp_path: Path) -> None:
    """WAL and foreign keys for every role; the key server's NORMAL sync and
    auto-checkpoint, the verification service's FULL sync and shorter lock wait."""
    from phe_trace.verification.database import make_engine

    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"

    def pragmas(engine: sa.Engine) -> tuple[Any, ...]:
        with engine.connect() as conn:
            values = tuple(
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in (
                    "journal_mode",
                    "foreign_keys",
                    "synchronous",
                    "busy_timeout",
                    "wal_autocheckpoint",
                )
            )
        engine.dispose()
        return values

    assert pragmas(ks_database.create_engine_for(url)) == ("wal", 1, 1, 30000, 20000)
    assert pragmas(make_engine(url)) == ("wal", 1, 2, 5000, 1000)
    assert pragmas(agg_storage.create_engine_for(url)) == ("wal", 1, 2, 30000, 1000)
