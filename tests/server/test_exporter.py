"""The export worker on SQLite and PostgreSQL: signed files, padding, split, lease, retention."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from phe_trace.clock import SettableClock
from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import ReportType
from phe_trace.server import ServerContext, create_app, run_export
from phe_trace.server.exporter import _lease_next
from phe_trace.server.storage.tables import export_batches, export_padding, exposures
from phe_trace.serving import LoopbackServer

from .conftest import make_settings
from .helpers import NOW

HOUR = 3600
T = int(NOW) - int(NOW) % HOUR  # the hour NOW falls in


def _insert(ctx: ServerContext, count: int, created_at: int, **extra: object) -> list[bytes]:
    start = (created_at // 600) - (created_at // 600) % 144 - 144
    base = dict(
        region="ZZ",
        traveler=False,
        rolling_start_interval_number=start,
        rolling_period=144,
        transmission_risk_level=2,
        report_type=1,
        days_since_onset_of_symptoms=3,
        created_at=created_at,
    )
    base.update(extra)
    rows = [dict(base, key_data=secrets.token_bytes(16)) for _ in range(count)]
    with ctx.engine.begin() as conn:
        conn.execute(exposures.insert(), rows)
    return [r["key_data"] for r in rows]


def _public_keys(ctx: ServerContext) -> dict[tuple[str, str], object]:
    """The published signing keys, read over HTTP (SPEC PUB-30)."""
    with LoopbackServer(create_app(context=ctx)) as live:
        listed = httpx.get(f"{live.url}/v1/exports/signing-keys").json()["keys"]
    return {
        (
            k["verification_key_id"],
            k["verification_key_version"],
        ): export.load_public_key_spki_base64(k["public_key_spki_base64"])
        for k in listed
    }


def _read(ctx: ServerContext, name: str, keys: dict) -> export.TemporaryExposureKeyExport:
    data = (ctx.settings.effective_export_dir / name).read_bytes()
    return export.verify_export_zip(data, keys)


@pytest.fixture
def small_ctx(tmp_path: Path, database_url: str, clock: SettableClock):
    settings = make_settings(tmp_path, database_url, export_min_records=0)
    context = ServerContext.open(settings, clock=clock)
    yield context
    context.close()


def test_export_writes_verifiable_files(small_ctx: ServerContext) -> None:
    """Keys of a closed window are written, signed and listed in index.txt (SPEC PUB-25, PUB-31)."""
    inserted = _insert(small_ctx, 20, T - 3 * HOUR)
    report = run_export(small_ctx, NOW)
    assert len(report.files_written) == 1
    name = report.files_written[0]
    assert name == f"ZZ/{T - 3 * HOUR}-{T - 2 * HOUR}-00001.zip"
    content = _read(small_ctx, name, _public_keys(small_ctx))
    assert sorted(k.key_data for k in content.keys) == sorted(inserted)
    assert content.region == "ZZ"
    index = (small_ctx.settings.effective_export_dir / "ZZ/index.txt").read_bytes()
    assert export.parse_index(index) == (name,)
    assert run_export(small_ctx, NOW).files_written == []  # nothing new is due


def test_embargoed_keys_wait_for_their_window(small_ctx: ServerContext) -> None:
    """A key created (embargoed) in the future is exported only after that window closes."""
    future = _insert(small_ctx, 1, T + 5 * HOUR)
    first = run_export(small_ctx, NOW)
    assert all(future[0] not in _all_keys(small_ctx, n) for n in first.files_written)
    later = run_export(small_ctx, NOW + 8 * HOUR)
    assert any(future[0] in _all_keys(small_ctx, n) for n in later.files_written)


def _all_keys(ctx: ServerContext, name: str) -> set[bytes]:
    data = (ctx.settings.effective_export_dir / name).read_bytes()
    content = export.decode_export_bin(export.unpack_export_zip(data).export_bin)
    return {k.key_data for k in content.keys}


def test_padding_persisted_and_rebuild_identical(
    tmp_path: Path, database_url: str, clock: SettableClock
) -> None:
    """Small batches are padded to the minimum; a rebuild writes the same export.bin (PUB-27)."""
    settings = make_settings(
        tmp_path, database_url, export_min_records=200, export_padding_range=50
    )
    ctx = ServerContext.open(settings, clock=clock)
    try:
        real = _insert(ctx, 10, T - 3 * HOUR)
        report = run_export(ctx, NOW)
        name = next(n for n in report.files_written if n.startswith(f"ZZ/{T - 3 * HOUR}-"))
        path = ctx.settings.effective_export_dir / name
        first_bin = export.unpack_export_zip(path.read_bytes()).export_bin
        content = export.decode_export_bin(first_bin)
        assert 200 <= len(content.keys) <= 250
        assert set(real) <= {k.key_data for k in content.keys}
        with ctx.engine.connect() as conn:
            padded = conn.execute(sa.select(sa.func.count()).select_from(export_padding)).scalar()
        assert padded >= len(content.keys) - len(real)
        # simulate a crash before the file was kept: file gone, batch open again
        path.unlink()
        with ctx.engine.begin() as conn:
            conn.execute(
                export_batches.update()
                .where(export_batches.c.start_timestamp == T - 3 * HOUR)
                .values(status="open", lease_owner=None, lease_expires_at=None)
            )
        again = run_export(ctx, NOW)
        assert name in again.files_written
        assert export.unpack_export_zip(path.read_bytes()).export_bin == first_bin
    finally:
        ctx.close()


def test_files_are_never_rewritten(small_ctx: ServerContext) -> None:
    """Re-running a finished batch keeps the published bytes (SPEC PUB-33)."""
    _insert(small_ctx, 5, T - 3 * HOUR)
    name = run_export(small_ctx, NOW).files_written[0]
    path = small_ctx.settings.effective_export_dir / name
    before = path.read_bytes()
    _insert(small_ctx, 5, T - 3 * HOUR)  # late keys must not change a published file
    with small_ctx.engine.begin() as conn:
        conn.execute(export_batches.update().values(status="open"))
    report = run_export(small_ctx, NOW)
    assert name not in report.files_written
    assert path.read_bytes() == before


def test_large_batches_are_split(tmp_path: Path, database_url: str, clock: SettableClock) -> None:
    """A batch over the maximum becomes batch_num 1..n of batch_size n (SPEC PUB-28)."""
    settings = make_settings(tmp_path, database_url, export_max_records=100)
    ctx = ServerContext.open(settings, clock=clock)
    try:
        inserted = _insert(ctx, 250, T - 3 * HOUR)
        report = run_export(ctx, NOW)
        names = [n for n in report.files_written if n.startswith(f"ZZ/{T - 3 * HOUR}-")]
        assert len(names) == 3
        keys = _public_keys(ctx)
        contents = [_read(ctx, n, keys) for n in names]
        assert [(c.batch_num, c.batch_size) for c in contents] == [(1, 3), (2, 3), (3, 3)]
        assert sorted(k.key_data for c in contents for k in c.keys) == sorted(inserted)
        # the parts cut the batch's key order: file n holds the keys below file n+1's
        in_order = [k.key_data for c in contents for k in c.keys]
        assert in_order == sorted(inserted)
    finally:
        ctx.close()


def test_lease_keeps_a_second_worker_out(small_ctx: ServerContext) -> None:
    """A batch leased by one worker is not written by another until the lease expires (PUB-29)."""
    _insert(small_ctx, 3, T - 3 * HOUR)
    from phe_trace.server.exporter import _create_batches

    _create_batches(small_ctx, int(NOW))
    held = _lease_next(small_ctx, int(NOW), "worker-a")
    assert held is not None
    other = run_export(small_ctx, NOW, worker_id="worker-b")
    assert not any(n.startswith(f"ZZ/{held.window.start}-") for n in other.files_written)
    later = run_export(
        small_ctx, NOW + small_ctx.settings.export_lease_seconds + 1, worker_id="worker-b"
    )
    assert any(n.startswith(f"ZZ/{held.window.start}-") for n in later.files_written)


def test_concurrent_workers_write_each_batch_once(small_ctx: ServerContext) -> None:
    """Two workers running at once never write the same file twice (SPEC PUB-29)."""
    for hours_back in range(3, 9):
        _insert(small_ctx, 3, T - hours_back * HOUR)
    reports, errors = [], []

    def work(worker: str) -> None:
        try:
            reports.append(run_export(small_ctx, NOW, worker_id=worker))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    written = [n for r in reports for n in r.files_written]
    assert len(written) == len(set(written))
    index = export.parse_index(
        (small_ctx.settings.effective_export_dir / "ZZ/index.txt").read_bytes()
    )
    assert sorted(index) == sorted(written)


def test_revised_keys_exported_as_revised(small_ctx: ServerContext) -> None:
    """A key revised after its first export appears in revised_keys with the new type (PUB-21)."""
    (key,) = _insert(
        small_ctx, 1, T - 6 * HOUR, report_type=int(ReportType.CONFIRMED_CLINICAL_DIAGNOSIS)
    )
    run_export(small_ctx, NOW - 3 * HOUR)
    with small_ctx.engine.begin() as conn:
        conn.execute(
            exposures.update().values(
                revised_report_type=1,
                revised_transmission_risk_level=2,
                revised_days_since_onset_of_symptoms=3,
                revised_at=T - 3 * HOUR,
            )
        )
    report = run_export(small_ctx, NOW)
    name = next(n for n in report.files_written if n.startswith(f"ZZ/{T - 3 * HOUR}-"))
    content = export.decode_export_bin(
        export.unpack_export_zip(
            (small_ctx.settings.effective_export_dir / name).read_bytes()
        ).export_bin
    )
    assert [k.key_data for k in content.revised_keys] == [key]
    assert content.revised_keys[0].report_type == ReportType.CONFIRMED_TEST


def test_retention_deletes_keys_and_files(small_ctx: ServerContext) -> None:
    """After 14 days keys and files are gone and index.txt no longer lists them (PUB-32)."""
    _insert(small_ctx, 4, T - 3 * HOUR)
    old = run_export(small_ctx, NOW).files_written
    assert old
    later = NOW + 15 * 86400
    report = run_export(small_ctx, later)
    assert report.keys_deleted == 4
    assert report.files_deleted >= len(old)
    for name in old:
        assert not (small_ctx.settings.effective_export_dir / name).exists()
    index = export.parse_index(
        (small_ctx.settings.effective_export_dir / "ZZ/index.txt").read_bytes()
    )
    assert not set(old) & set(index)
    with small_ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(exposures)).scalar() == 0


def _directives(cache_control: str) -> set[str]:
    """The directives of a Cache-Control value, lower-cased, without spaces."""
    return {part.strip().lower() for part in cache_control.split(",") if part.strip()}


def test_exports_served_with_cache_headers(small_ctx: ServerContext) -> None:
    """PUB-31: index.txt public for 60 s, zips public for a year and immutable; unknown 404.

    The directives are compared whole: a zip served for an hour (``max-age=3600``) fails.
    """
    _insert(small_ctx, 2, T - 3 * HOUR)
    name = run_export(small_ctx, NOW).files_written[0]
    with (
        LoopbackServer(create_app(context=small_ctx)) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        index = c.get("/v1/exports/ZZ/index.txt")
        assert index.status_code == 200
        assert _directives(index.headers["cache-control"]) == {"public", "max-age=60"}
        assert index.text.splitlines() == [name]
        zipped = c.get(f"/v1/exports/{name}")
        assert zipped.status_code == 200
        assert _directives(zipped.headers["cache-control"]) == {
            "public",
            "max-age=31536000",  # 365 days of 86,400 s
            "immutable",
        }
        assert zipped.content == (small_ctx.settings.effective_export_dir / name).read_bytes()
        assert c.get("/v1/exports/ZZ/1-2-00001.zip").status_code == 404
        assert c.get("/v1/exports/XX/index.txt").status_code == 404
        assert c.get("/v1/exports/ZZ/..%2Fsecret").status_code in (400, 404)
        pem = c.get("/v1/exports/signing-key.pem")
        assert pem.text.startswith("-----BEGIN PUBLIC KEY-----")


def test_every_active_signing_key_signs(small_ctx: ServerContext) -> None:
    """After a rotation each file carries one verifying signature per active key (PUB-30)."""
    from phe_trace.server.signing import rotate_signing_key

    assert rotate_signing_key(small_ctx.settings.signing_key_dir) == "v2"
    _insert(small_ctx, 3, T - 3 * HOUR)
    name = run_export(small_ctx, NOW).files_written[0]
    published = _public_keys(small_ctx)
    assert sorted(v for _, v in published) == ["v1", "v2"]
    data = (small_ctx.settings.effective_export_dir / name).read_bytes()
    for key_name, public in published.items():  # each key alone verifies the file
        assert len(export.verify_export_zip(data, {key_name: public}).keys) == 3
    for path in small_ctx.settings.signing_key_dir.glob("v*.pem"):
        assert path.stat().st_mode & 0o777 == 0o600


def test_odd_region_names_are_404(small_ctx: ServerContext) -> None:
    """Region names the export naming refuses are not found, never a 500 (SPEC PUB-2)."""
    with (
        LoopbackServer(create_app(context=small_ctx)) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        for region in ("-", "-x", "_"):
            response = c.get(f"/v1/exports/{region}/index.txt")
            assert response.status_code in (400, 404), region
            assert response.json()["code"] in ("bad_request", "not_found")


def test_index_exists_and_is_empty_before_the_first_batch(small_ctx: ServerContext) -> None:
    """A fresh server serves an empty index.txt with the usual headers (SPEC EXP-14, PUB-31)."""
    with (
        LoopbackServer(create_app(context=small_ctx)) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        index = c.get("/v1/exports/ZZ/index.txt")
        assert index.status_code == 200
        assert index.content == b""
        assert index.headers["content-type"].startswith("text/plain")
        assert index.headers["cache-control"] == "public, max-age=60"
        assert c.get("/v1/exports/XX/index.txt").status_code == 404  # not our region
        _insert(small_ctx, 2, T - 3 * HOUR)
        name = run_export(small_ctx, NOW).files_written[0]
        assert c.get("/v1/exports/ZZ/index.txt").text == name


def test_a_worker_that_lost_its_lease_backs_off(small_ctx: ServerContext) -> None:
    """Lease taken over while the first worker finishes: it backs off, no error (PUB-29).

    Worker A's lease expires and worker B takes the batch over; B completes it just as A
    starts to record it. A must neither fail (e.g. on B's file rows) nor count the batch;
    the batch's file is on disk and recorded exactly once.
    """
    from sqlalchemy import event

    from phe_trace.server.exporter import ExportReport, _create_batches, _write_batch
    from phe_trace.server.storage.tables import export_files

    _insert(small_ctx, 3, T - 3 * HOUR)
    _create_batches(small_ctx, int(NOW))
    held = _lease_next(small_ctx, int(NOW), "worker-a")
    assert held is not None
    later = int(NOW) + small_ctx.settings.export_lease_seconds + 1
    taken = _lease_next(small_ctx, later, "worker-b")
    assert taken is not None and taken.id == held.id
    a_thread, b_report, fired = threading.get_ident(), ExportReport(), []

    def b_completes_first(conn, cursor, statement: str, *_: object) -> None:
        recording = export_files.name in statement or statement.startswith(
            f"UPDATE {export_batches.name}"
        )
        if threading.get_ident() == a_thread and recording and not fired:
            fired.append(statement)
            other = threading.Thread(
                target=_write_batch, args=(small_ctx, taken, later, "worker-b", b_report)
            )
            other.start()
            other.join()

    event.listen(small_ctx.engine, "before_cursor_execute", b_completes_first)
    a_report = ExportReport()
    try:
        _write_batch(small_ctx, held, int(NOW), "worker-a", a_report)
    finally:
        event.remove(small_ctx.engine, "before_cursor_execute", b_completes_first)
    assert fired and b_report.batches_written == 1
    assert a_report.batches_written == 0  # backed off: the batch is B's
    with small_ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(export_files.c.name).where(export_files.c.batch_id == held.id)
        ).all()
        status = conn.execute(
            sa.select(export_batches.c.status).where(export_batches.c.id == held.id)
        ).scalar()
    written = a_report.files_written + b_report.files_written
    assert len(rows) == 1 and status == "complete"
    assert written == [rows[0].name]  # one file, created once by whichever came first
    assert (small_ctx.settings.effective_export_dir / rows[0].name).is_file()
