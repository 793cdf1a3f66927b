"""The export worker: plan batches, lease one, write and sign its files, update the index.

``protocol_spec/SPEC.md`` §11 (PUB-25 … PUB-33), file format §12. Call
:func:`run_export` with a context and ``now`` (unix seconds) — the city simulator
passes its simulated clock, ``phe-trace server export --now`` passes the option, and
``server run`` calls it periodically.

Guarantees: two workers never write the same batch (a lease row, taken with one
conditional UPDATE); a file name once written is never rewritten (the store refuses);
padding keys are persisted with their batch, so a rebuild after a crash carries the
same keys; a batch larger than ``export_max_records`` is split into ``batch_num`` of
``batch_size`` files.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

from .context import ServerContext
from .errors import ExportStoreError
from .key_counts import release_key_counts
from .logs import log_event
from .planner import BatchWindow, plan_batches
from .settings import ServerSettings
from .signing import load_signing_keys
from .storage import queries
from .validation import TRANSMISSION_RISK_BACKFILL

__all__ = ["ExportReport", "reconcile_index", "rewrite_index", "run_export", "run_retention"]


@dataclass
class ExportReport:
    """What one :func:`run_export` call did."""

    batches_planned: int = 0
    batches_written: int = 0
    files_written: list[str] = field(default_factory=list)
    keys_exported: int = 0
    padding_keys: int = 0
    files_deleted: int = 0
    keys_deleted: int = 0
    #: Days whose differentially private key count this run released (SPEC AGG-38).
    key_counts_released: int = 0


def run_export(
    ctx: ServerContext | ServerSettings, now: float, *, worker_id: str | None = None
) -> ExportReport:
    """Plan, write and sign every due batch at ``now``, then apply retention.

    ``ctx`` is a running server's context (``app.state.keyserver``) or settings, for
    which a context is opened and closed around the run.
    """
    if isinstance(ctx, ServerSettings):
        context = ServerContext.open(ctx)
        try:
            return run_export(context, now, worker_id=worker_id)
        finally:
            context.close()
    report = ExportReport()
    worker = worker_id or secrets.token_hex(8)
    stamp = int(now)
    reconcile_index(ctx, ctx.settings.region)  # a run that died before its rewrite (PUB-37)
    settle_keys(ctx, now)  # before the batches: a window is written from settled rows
    report.batches_planned = _create_batches(ctx, stamp)
    while (batch := _lease_next(ctx, stamp, worker)) is not None:
        _write_batch(ctx, batch, stamp, worker, report)
    # before retention: a day's keys are counted while they are still stored
    report.key_counts_released = len(release_key_counts(ctx, now))
    retention = run_retention(ctx, now)
    report.files_deleted, report.keys_deleted = retention.files_deleted, retention.keys_deleted
    if report.batches_written or report.files_deleted:
        rewrite_index(ctx, ctx.settings.region)
    return report


def settle_keys(ctx: ServerContext, now: float) -> int:
    """Rewrite the keys of every closed ``created_at`` window in random order (PUB-39).

    A window is closed once ``now`` is past it: no publish adds to it any more. Until
    then its keys sit in the order they arrived, at most one window long. Another worker
    settling the same rows at the same time makes this one's insert collide; it then
    leaves them to that worker.
    """
    window = ctx.settings.truncate_window_seconds
    cutoff = int(now) // window * window
    try:
        with ctx.engine.begin() as conn:
            return queries.settle_closed_windows(conn, cutoff, _SHUFFLE.shuffle)
    except IntegrityError:
        return 0


_SHUFFLE = secrets.SystemRandom()


def _create_batches(ctx: ServerContext, now: int) -> int:
    s = ctx.settings
    with ctx.engine.connect() as conn:
        windows = plan_batches(
            now=now,
            period=s.export_period_seconds,
            min_window_age=s.export_min_window_age_seconds,
            last_end=queries.last_batch_end(conn, s.region),
            earliest_key=queries.earliest_exposure(conn, s.region),
            oldest_start=now - s.retention_days * 86400,
        )
    created = 0
    for window in windows:
        try:
            with ctx.engine.begin() as conn:
                queries.insert_batch(conn, s.region, window.start, window.end, now)
            created += 1
        except IntegrityError:
            continue  # another worker planned the same window
    return created


@dataclass(frozen=True, slots=True)
class _Batch:
    id: int
    window: BatchWindow


def _lease_next(ctx: ServerContext, now: int, worker: str) -> _Batch | None:
    with ctx.engine.connect() as conn:
        candidates = queries.leasable_batches(conn, ctx.settings.region, now)
    until = now + ctx.settings.export_lease_seconds
    for row in candidates:
        with ctx.engine.begin() as conn:
            taken = queries.lease_batch(conn, row.id, worker, now, until)
        if taken:
            return _Batch(row.id, BatchWindow(row.start_timestamp, row.end_timestamp))
    return None


_REPORT_TYPES = {int(r): r for r in ReportType}


def _keys_from(
    rows: Iterable[tuple[Any, ...]], end: int, *, skip_revoked: bool
) -> list[DiagnosisKey]:
    """DiagnosisKeys with the values in force at ``end`` (revised values once revised)."""
    keys: list[DiagnosisKey] = []
    append, types, revoked = keys.append, _REPORT_TYPES, int(ReportType.REVOKED)
    for key_data, start, period, risk, rtype, dsos, revised_at, r_risk, r_type, r_dsos in rows:
        if revised_at is not None and revised_at < end:
            risk, rtype, dsos = r_risk, r_type, r_dsos
        if skip_revoked and rtype == revoked:
            continue
        append(DiagnosisKey(bytes(key_data), start, period, risk, types[rtype], dsos))
    return keys


def _collect(
    conn: Connection, region: str, window: BatchWindow
) -> tuple[list[DiagnosisKey], list[DiagnosisKey]]:
    """Keys created in the window (sorted by key) and keys revised in it (PUB-21, PUB-25)."""
    created = queries.exposures_created_in(conn, region, window.start, window.end)
    keys = _keys_from(created, window.end, skip_revoked=True)
    keys.sort(key=attrgetter("key_data"))  # the query streams them unordered
    revised_rows = queries.exposures_revised_in(conn, region, window.start, window.end)
    return keys, _keys_from(revised_rows, window.end, skip_revoked=False)


def _random_padding(
    count: int, real: Sequence[DiagnosisKey], window: BatchWindow
) -> list[DiagnosisKey]:
    """Random keys shaped like real ones (metadata cloned from a random real key)."""
    day_start = window.start // 600 - (window.start // 600) % 144
    padding = []
    for _ in range(count):
        if real:
            model = real[secrets.randbelow(len(real))]
            start, period = model.rolling_start_interval_number, model.rolling_period
            risk, rtype = model.transmission_risk_level, model.report_type
            dsos = model.days_since_onset_of_symptoms
        else:
            start, period = day_start - 144 * (1 + secrets.randbelow(13)), 144
            rtype = ReportType.CONFIRMED_TEST
            risk, dsos = TRANSMISSION_RISK_BACKFILL[rtype], secrets.randbelow(15) - 4
        padding.append(DiagnosisKey(secrets.token_bytes(16), start, period, risk, rtype, dsos))
    return padding


def _padding(ctx: ServerContext, batch: _Batch, real: Sequence[DiagnosisKey]) -> list[DiagnosisKey]:
    s = ctx.settings
    with ctx.engine.begin() as conn:
        stored = queries.padding_rows(conn, batch.id)
        if stored:
            return [
                DiagnosisKey(
                    bytes(r.key_data),
                    r.rolling_start_interval_number,
                    r.rolling_period,
                    r.transmission_risk_level,
                    ReportType(r.report_type),
                    r.days_since_onset_of_symptoms,
                )
                for r in stored
            ]
        target = s.export_min_records + secrets.randbelow(s.export_padding_range + 1)
        if len(real) >= target or s.export_min_records == 0:
            return []
        padding = _random_padding(target - len(real), real, batch.window)
        queries.insert_padding(
            conn,
            (
                {
                    "batch_id": batch.id,
                    "key_data": k.key_data,
                    "rolling_start_interval_number": k.rolling_start_interval_number,
                    "rolling_period": k.rolling_period,
                    "transmission_risk_level": k.transmission_risk_level,
                    "report_type": int(k.report_type),
                    "days_since_onset_of_symptoms": k.days_since_onset_of_symptoms,
                }
                for k in padding
            ),
        )
    return padding


def _split(
    keys: Sequence[DiagnosisKey], revised: Sequence[DiagnosisKey], limit: int
) -> list[tuple[Sequence[DiagnosisKey], Sequence[DiagnosisKey]]]:
    """Parts of at most ``limit`` records: keys first (sorted), then revised keys (PUB-28)."""
    if len(keys) + len(revised) <= limit:
        return [(keys, revised)]
    parts: list[tuple[Sequence[DiagnosisKey], Sequence[DiagnosisKey]]] = []
    for i in range(0, len(keys), limit):
        parts.append((keys[i : i + limit], ()))
    room = limit - len(parts[-1][0])
    if room and revised:
        parts[-1] = (parts[-1][0], revised[:room])
    for i in range(room, len(revised), limit):
        parts.append(((), revised[i : i + limit]))
    return parts


def _write_batch(
    ctx: ServerContext, batch: _Batch, now: int, worker: str, report: ExportReport
) -> None:
    started = time.perf_counter()
    s = ctx.settings
    with ctx.engine.connect() as conn:
        keys, revised = _collect(conn, s.region, batch.window)
    padding = _padding(ctx, batch, keys)
    if padding:  # small batches only: restore the key order after adding padding
        keys = sorted([*keys, *padding], key=lambda k: k.key_data)
    signers = [
        export.EcdsaSigner(k.private_key, export.SignatureInfo(k.key_id, k.version))
        for k in load_signing_keys(s.signing_key_dir, s.signing_key_id)
    ]
    parts = _split(keys, revised, s.export_max_records)
    names = []
    for number, (part_keys, part_revised) in enumerate(parts, start=1):
        content = export.TemporaryExposureKeyExport(
            start_timestamp=batch.window.start,
            end_timestamp=batch.window.end,
            region=s.region,
            keys=tuple(part_keys),
            revised_keys=tuple(part_revised),
            batch_num=number,
            batch_size=len(parts),
        )
        name = export.export_file_name(s.region, batch.window.start, batch.window.end, number)
        if ctx.store.create(name, export.build_export_zip(content, signers)):
            report.files_written.append(name)
        names.append((name, number, len(part_keys) + len(part_revised)))
    if not _complete(ctx, batch, names, len(parts), now, worker):
        return  # the lease was lost: the worker holding it now records the batch
    elapsed = time.perf_counter() - started
    ctx.metrics.export_seconds.observe(elapsed)
    ctx.metrics.export_files.inc(len(names))
    report.batches_written += 1
    report.keys_exported += len(keys) - len(padding) + len(revised)
    report.padding_keys += len(padding)
    log_event(
        "export_batch",
        start=batch.window.start,
        end=batch.window.end,
        files=len(names),
        keys=len(keys),
        seconds=round(elapsed, 3),
    )


def _complete(
    ctx: ServerContext,
    batch: _Batch,
    names: Iterable[tuple[str, int, int]],
    size: int,
    now: int,
    worker: str,
) -> bool:
    """Record the batch's files and mark it complete, if ``worker`` still holds the lease.

    The lease is checked and the batch closed by the transaction's first statement, so on
    SQLite the write lock, on PostgreSQL the row lock, is held before the file rows are
    read and written: a worker whose lease expired and was taken over backs off here
    (returns False, writes nothing) instead of racing the new holder's rows.
    """
    with ctx.engine.begin() as conn:
        if not queries.complete_batch(conn, batch.id, worker):
            log_event("export_lease_lost", logging.WARNING, batch=batch.id)
            return False
        known = queries.batch_file_names(conn, batch.id)
        for name, number, count in names:
            if name not in known:
                queries.insert_export_file(
                    conn,
                    batch_id=batch.id,
                    region=ctx.settings.region,
                    name=name,
                    batch_num=number,
                    batch_size=size,
                    key_count=count,
                    end_timestamp=batch.window.end,
                    created_at=now,
                )
    return True


def reconcile_index(ctx: ServerContext, region: str) -> bool:
    """Rewrite ``region/index.txt`` unless it lists exactly the recorded files (PUB-37).

    A worker that died after recording its files and before rewriting the index left
    published files out of it; the next run, whatever it writes, lists them first.
    Whether a rewrite was needed.
    """
    with ctx.engine.connect() as conn:
        names = [row.name for row in queries.completed_files(conn, region)]
    try:
        current: bytes | None = ctx.store.read(export.index_file_name(region))
    except ExportStoreError:
        current = None
    if current == export.format_index(names) or (current is None and not names):
        return False
    log_event("export_index_reconciled", logging.WARNING, files=len(names))
    rewrite_index(ctx, region)
    return True


def rewrite_index(ctx: ServerContext, region: str) -> list[str]:
    """Rewrite ``region/index.txt`` from the recorded files, oldest first (PUB-31).

    Runs under the region's index lock, so that of two concurrent rewrites the later one
    lists every file committed before it: an index never loses a published file.
    """
    with ctx.engine.begin() as conn:
        queries.lock_index(conn, region, int(ctx.now()))
        names = [row.name for row in queries.completed_files(conn, region)]
        ctx.store.replace(export.index_file_name(region), export.format_index(names))
    return names


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What :func:`run_retention` deleted."""

    keys_deleted: int
    certificates_deleted: int
    files_deleted: int


def run_retention(ctx: ServerContext, now: float) -> RetentionReport:
    """Delete keys, certificate markers and export files past retention (PUB-32)."""
    cutoff = int(now) - ctx.settings.retention_days * 86400
    with ctx.engine.begin() as conn:
        keys, certs, names = queries.delete_expired(conn, cutoff, int(now))
    for name in names:
        ctx.store.delete(name)
    if names:
        rewrite_index(ctx, ctx.settings.region)
        log_event("retention", keys=keys, files=len(names))
    return RetentionReport(keys, certs, len(names))
