"""Sync: download new exports, verify, match, score, store, notify (AGENT-13 … AGENT-16).

One check, :func:`run_sync`:

1. download ``{export_base_url}{region}/index.txt`` and every listed file not yet
   processed, oldest first (:mod:`.download`: retries, backoff, resume) — except files
   whose name shows that none of their keys can match a sighting the device can hold
   (:func:`can_match`, SPEC SCALE-8): they are marked processed without a download;
2. verify each file's signature with the health authority's configured public keys —
   a file that fails is refused, reported and never matched (it is tried again at the
   next check, in case the copy was damaged in transit);
3. match the verified keys against the stored sightings with
   :func:`phe_trace.exposure.match`, leaving out the device's own keys (the stored
   records are indexed from their bytes, :mod:`.screen`: only those that match become
   matcher values); build exposure windows and keep them (sealed) under the retention rule
   (:mod:`.retention`);
4. score all kept windows, store the result, and notify when the risk rises.

Each key is matched against all stored sightings when its file is first checked. A
sighting stored later can still match it only while the reception window of the key's
last identifier (MATCH-3: its interval ± the matcher's tolerance) has not ended: such
*open* keys (a key published while still valid, or just after) are kept, sealed with the
sync state, and matched again at each check until their window ends more than a scan
period plus the clock-skew tolerance before the check; a match already kept is not
counted twice. So the kept matches are those of matching every key ever checked against
every stored sighting at each check.
(Simplification: a sighting time-stamped earlier than that — a clock set back by more
than the tolerance — is not matched against a key that is no longer open.)

Files are marked processed only after their matches are stored, so a server that goes
down mid-download loses nothing: the next check resumes with the first file not done.
A processed file is remembered, dated by the latest of its check, the end of the last
reception window of its keys and the end of the last one its name allows
(:func:`name_reach`, SPEC SCALE-8) (:func:`_processed_at`), and forgotten under the
retention rule like everything else (:mod:`.retention`). So it is forgotten only once
every sighting its keys could match is gone — and by then :func:`can_match` says so from
its name, so a file the index still lists is not downloaded again. (A name that gives no
window is checked again and finds nothing, and changes no kept match.)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.crypto import INTERVAL_SECONDS, TEK_ROLLING_PERIOD
from phe_trace.errors import PheTraceError
from phe_trace.exposure import ExposureConfig, SightingIndex, match, reception_window
from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, DiagnosisKeyColumns
from phe_trace.protocol.errors import ExportError, ExportUnknownKeyError

from . import analytics, risk
from .config import AgentConfig
from .download import MAX_INDEX_BYTES, download
from .errors import AgentConfigError, ExportNotFoundError, ServerUnavailableError, SyncError
from .notify import notify
from .regions import followed_regions
from .retention import SECONDS_PER_DAY, processed_files, utc_day, warning_items
from .screen import sighting_index
from .state import CheckRecord, KeyRecord, Notified, ReportState, SyncState, Warnings
from .store import AgentStore
from .trust import load_trusted_keys

__all__ = [
    "SyncResult",
    "can_match",
    "load_trusted_keys",
    "name_reach",
    "recording_floor",
    "run_sync",
    "status_summary",
]

log = logging.getLogger("phe_trace.agent")


@dataclass(slots=True)
class SyncResult:
    """What one check for exposures did and found."""

    files_checked: int = 0
    keys_checked: int = 0
    matched_sightings: int = 0
    new_windows: int = 0
    risk_level: str = "low"
    last_exposure_day: str | None = None
    rejected_files: dict[str, str] = field(default_factory=dict)
    interrupted: str | None = None
    #: The server has no export yet: no index (404) or an empty one (SPEC EXP-14).
    nothing_published: bool = False
    days: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: Per followed region (home included): files its index lists, files checked now,
    #: and why it could not be checked (a region other than home that fails is skipped).
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Listed files not downloaded, by region: none of their keys can match (SCALE-8).
    files_skipped: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What the check is kept as: the fields of its :class:`.state.CheckRecord` but its
        time and error, in that order; ``files_skipped`` counts the skipped files."""
        return {
            name: self._summary_value(name)
            for name in (f.name for f in fields(CheckRecord))
            if name not in ("at", "error")
        }

    def _summary_value(self, name: str) -> Any:
        if name == "files_skipped":
            return sum(len(paths) for paths in self.files_skipped.values())
        return getattr(self, name)


def _verify(
    data: bytes, keys: list[ec.EllipticCurvePublicKey], key_id: str | None = None
) -> export.TemporaryExposureKeyExport:
    """The verified content of an export zip, its keys read as columns (only the keys
    that match become values)."""
    error: ExportError | None = None
    for key in keys:
        try:
            content = export.verify_export_zip(data, key, columns=True)
        except ExportError as exc:
            error = exc
            continue
        if key_id is not None and all(
            info.verification_key_id != key_id for info in content.signature_infos
        ):
            raise ExportUnknownKeyError(f"the file names no signing key {key_id!r}")
        return content
    assert error is not None
    raise error


@dataclass(frozen=True, slots=True)
class _Source:
    """One followed region: where its exports are and the only keys that verify them."""

    name: str
    base: str
    index_url: str
    public_keys: tuple[str, ...]
    key_id: str | None = None
    home: bool = False

    def label(self, path: str) -> str:
        """How a file of this region is named in results: its path, prefixed with the
        region's name for regions other than home."""
        return path if self.home else f"{self.name}:{path}"


def _urls(cfg: AgentConfig) -> tuple[str, str]:
    if not cfg.key_server_url and not cfg.export_base_url:
        raise SyncError("no key server configured (PHE_TRACE_AGENT_KEY_SERVER_URL)")
    base = cfg.export_base_url or f"{(cfg.key_server_url or '').rstrip('/')}/v1/exports/"
    base = base if base.endswith("/") else base + "/"
    return base, f"{base}{export.index_file_name(cfg.region)}"


def _sources(cfg: AgentConfig, store: AgentStore) -> list[_Source]:
    """Home (when a key server is configured) and every followed region (FED-16)."""
    sources = []
    if cfg.key_server_url or cfg.export_base_url:
        base, index_url = _urls(cfg)
        sources.append(_Source(cfg.region, base, index_url, tuple(cfg.public_keys()), home=True))
    for r in followed_regions(cfg, store):
        sources.append(_Source(r.name, r.export_url, r.index_url, r.public_keys, r.key_id))
    if not sources:
        _urls(cfg)  # raises: nothing to follow
    return sources


def recording_floor(cfg: AgentConfig, store: AgentStore, now: float) -> float:
    """The earliest time a sighting stored on this device, now or later, can have been
    heard (unix seconds, SPEC SCALE-8): the start of the UTC day of the oldest stored key
    or sighting row, and never later than ``now`` less a scan period and the clock-skew
    tolerance (what a scan window still being recorded may hold).

    It depends only on when the device began recording (or on the retention horizon),
    from the day numbers the store keeps in clear — not on what the device heard.
    """
    latest = now - cfg.scan_period_s - cfg.clock_skew_tolerance_s
    first_day = store.first_record_day()
    if first_day is None:
        return latest
    return min(latest, float(first_day * SECONDS_PER_DAY))


def can_match(path: str, floor: float, clock_skew_tolerance_s: float) -> bool:
    """Whether the export file at ``path`` may hold a key that matches a sighting heard at
    ``floor`` or later (SPEC SCALE-8).

    A file named for the window [start, end) holds keys published before ``end``; a key
    is published at the earliest while it is valid, so its identifiers were all broadcast
    before ``end`` + one key day, and match sightings up to the matcher's tolerance after
    that (MATCH-3), plus the clock-skew tolerance. A name that does not give a window
    (another server's naming) may match anything.
    """
    reach = name_reach(path)
    return reach is None or reach + clock_skew_tolerance_s >= floor


def name_reach(path: str) -> float | None:
    """The latest time (unix seconds) a sighting can be heard that a key of the export
    file at ``path`` matches, from the file's name alone: the end of the reception window
    (MATCH-3) of an identifier broadcast one key day after the window's end. None when the
    name gives no window (SPEC SCALE-8)."""
    try:
        name = export.parse_export_file_name(path)
    except ExportError:
        return None
    last_interval = -(-name.end_timestamp // INTERVAL_SECONDS) + TEK_ROLLING_PERIOD - 1
    _, reach = reception_window(last_interval)
    return float(reach * INTERVAL_SECONDS)


def _fetch_new(
    cfg: AgentConfig,
    store: AgentStore,
    client: httpx.Client,
    source: _Source,
    processed: Collection[str],
    result: SyncResult,
    now: float,
) -> list[tuple[str, export.TemporaryExposureKeyExport]]:
    keys = load_trusted_keys(list(source.public_keys))

    def get(url: str, max_bytes: int = cfg.download_max_bytes) -> bytes:
        return download(
            client,
            url,
            retries=cfg.download_retries,
            backoff_s=cfg.download_backoff_s,
            deadline_s=cfg.download_deadline_s,
            max_bytes=max_bytes,
        )

    try:
        paths = export.parse_index(get(source.index_url, MAX_INDEX_BYTES))
    except ExportNotFoundError:
        # A server (or export CDN) before its first batch may have no index at all:
        # nothing is published yet, which is not a failed check.
        log.info("no export index at %s yet: nothing published", source.index_url)
        paths = ()
    except ExportError as exc:
        raise SyncError(f"the export index is malformed: {exc}") from None
    result.regions[source.name]["listed"] = len(paths)
    floor = recording_floor(cfg, store, now)
    skipped = result.files_skipped.setdefault(source.name, [])
    verified = []
    for path in paths:
        if path in processed:
            continue
        if not can_match(path, floor, cfg.clock_skew_tolerance_s):
            skipped.append(path)
            continue
        try:
            data = get(source.base + path)
        except ServerUnavailableError as exc:
            result.interrupted = str(exc)
            log.error("download interrupted, will resume at the next check: %s", exc)
            break
        except SyncError as exc:  # this file only: the others are still checked
            _refuse(result, source.label(path), exc.code, str(exc))
            continue
        try:
            verified.append((path, _verify(data, keys, source.key_id)))
        except ExportError as exc:
            _refuse(result, source.label(path), exc.code, str(exc))
    return _complete_batches(verified, result, source)


def _refuse(result: SyncResult, path: str, code: str, why: str) -> None:
    """Record a file that is not matched at this check (AGENT-14); it is tried again."""
    result.rejected_files[path[:200]] = code
    log.error("export %s refused (%s): %s; it is not matched", path[:200], code, why)


def _complete_batches(
    verified: list[tuple[str, export.TemporaryExposureKeyExport]],
    result: SyncResult,
    source: _Source,
) -> list[tuple[str, export.TemporaryExposureKeyExport]]:
    """Only the files of complete batches (EXP-11): the files of a split batch (same
    region, start time and ``batch_size`` > 1) are matched together or not at all. An
    incomplete batch is refused — or, when the download was interrupted, left for the
    next check, which fetches it again."""
    groups: dict[tuple[str, int, int | str], list[tuple[str, export.TemporaryExposureKeyExport]]]
    groups = {}
    for path, content in verified:
        # A file that is a whole batch (1 of 1) is complete on its own, even when another
        # file shares its start time.
        size: int | str = content.batch_size if content.batch_size > 1 else path
        groups.setdefault((content.region, content.start_timestamp, size), []).append(
            (path, content)
        )
    complete: set[str] = set()
    for files in groups.values():
        try:
            export.check_batches_complete(content for _, content in files)
        except ExportError as exc:
            if result.interrupted is None:
                for path, _ in files:
                    _refuse(result, source.label(path), exc.code, str(exc))
            continue
        complete.update(path for path, _ in files)
    return [item for item in verified if item[0] in complete]


def _ident(key: DiagnosisKey) -> tuple[bytes, int]:
    return key.key_data, key.rolling_start_interval_number


def _idents(keys: DiagnosisKeyColumns) -> Iterator[tuple[bytes, int]]:
    return zip(keys.key_data, keys.rolling_start_interval_number.tolist(), strict=True)


class _Listed:
    """Whether a key (key data, rolling start) is one of ``keys``: a set of their key data,
    and the starts of each only once a key's data is found in it (rarely: a carried open
    key listed again, or a kept match's key revised), so no tuple is made per key."""

    def __init__(self, keys: DiagnosisKeyColumns) -> None:
        self._keys = keys
        self._data = set(keys.key_data)
        self._starts: dict[bytes, set[int]] | None = None

    def __contains__(self, ident: object) -> bool:
        if not isinstance(ident, tuple) or len(ident) != 2 or ident[0] not in self._data:
            return False
        if self._starts is None:
            self._starts = {}
            for data, start in _idents(self._keys):
                self._starts.setdefault(data, set()).add(start)
        return ident[1] in self._starts[ident[0]]


def _columns(keys: Sequence[DiagnosisKey]) -> DiagnosisKeyColumns:
    return keys if isinstance(keys, DiagnosisKeyColumns) else DiagnosisKeyColumns.from_keys(keys)


def _current_keys(
    verified: list[tuple[str, export.TemporaryExposureKeyExport]], own: set[bytes]
) -> DiagnosisKeyColumns:
    """The latest version of every key: a revised key (new report type, or REVOKED)
    replaces what an earlier file — or an earlier check — said about the same key.
    The device's own keys are left out: a reporter never matches itself (AGENT-15). A key
    that several followed regions list (one region's key in another's exports through
    federation) is matched once (FED-16)."""
    listed = DiagnosisKeyColumns.concat(
        _columns(group) for _, content in verified for group in (content.keys, content.revised_keys)
    )
    data = listed.key_data
    rows: Collection[int]
    if len(set(data)) == len(data):  # no key listed twice (the usual case): nothing to merge
        rows = range(len(data))
    else:
        rows = dict(zip(_idents(listed), range(len(data)), strict=True)).values()  # last wins
    if own:
        rows = [row for row in rows if data[row] not in own]
    return listed if len(rows) == len(data) else listed.take(list(rows))


def _sightings(cfg: AgentConfig, store: AgentStore) -> SightingIndex:
    """The stored sightings as the matcher's index, built from the records' bytes
    (:mod:`.screen`); a matched one becomes a value with RSSI = the window's mean
    (AGENT-15)."""
    plain = b"".join(store.sighting_plaintexts())
    return sighting_index(plain, cfg.rssi_correction_db)


#: How far after an identifier's interval its reception window ends (MATCH-3).
_WINDOW_REACH = reception_window(0)[1]


def _open_until(keys: DiagnosisKeyColumns) -> npt.NDArray[np.float64]:
    """When the last sighting each key can match may have been heard (unix seconds): the
    end of its last identifier's reception window (MATCH-3)."""
    last = keys.rolling_start_interval_number + keys.rolling_period - 1
    return (last + _WINDOW_REACH).astype(np.float64) * INTERVAL_SECONDS


def _processed_at(path: str, content: export.TemporaryExposureKeyExport, now: float) -> float:
    """The time a processed file is dated by: the latest of its check, the end of the last
    reception window of its keys and the one its name allows (see the module docstring).

    Dated by its name's reach, an entry outlives the sightings it could match, and once
    it is forgotten the file is skipped (SCALE-8): a file the server still lists on the
    first day its entry is gone is not downloaded a second time.
    """
    ends = [float(now)]
    for group in (content.keys, content.revised_keys):
        if len(group):
            ends.append(float(_open_until(_columns(group)).max()))
    reach = name_reach(path)
    if reach is not None:
        ends.append(reach)
    return max(ends)


def _match_and_keep(
    cfg: AgentConfig,
    store: AgentStore,
    now: float,
    new_keys: DiagnosisKeyColumns,
    open_keys: list[KeyRecord],
    result: SyncResult,
) -> list[KeyRecord]:
    """Match this check's keys and the still open ones; keep the matches (AGENT-15).

    Returns the keys that stay open after this check (see the module docstring).
    """
    new = _Listed(new_keys)
    kept_open = DiagnosisKeyColumns.from_keys(open_keys)  # KeyRecords have a key's fields
    rows = [row for row, ident in enumerate(_idents(kept_open)) if ident not in new]
    carried = kept_open.take(rows)
    if len(new_keys) or len(carried):
        index = _sightings(cfg, store)
        first = match(new_keys, index, workers=cfg.match_workers).matches
        days = cfg.retention_days
        result.new_windows = risk.add_windows(
            store, first, now, superseded=new, retention_days=days
        )
        result.matched_sightings = len(first)
        if len(carried):  # open keys: count only what was not kept yet
            later = match(carried, index, workers=cfg.match_workers).matches
            added = risk.add_windows(store, later, now, retention_days=days)
            result.new_windows += added
            result.matched_sightings += added
    margin = cfg.scan_period_s + cfg.clock_skew_tolerance_s
    still = _open_until(carried) > now - margin
    return [
        *_open_records(new_keys, now - margin),
        *(open_keys[rows[r]] for r in np.flatnonzero(still)),
    ]


def _open_records(keys: DiagnosisKeyColumns, after: float) -> list[KeyRecord]:
    """The keys that can still match a sighting heard after ``after``, as kept."""
    held = keys
    rows = np.flatnonzero(_open_until(held) > after)
    if not rows.size:
        return []
    held = held.take(rows)
    onsets = [
        onset if given else None
        for onset, given in zip(
            held.days_since_onset_of_symptoms.tolist(), held.onset_given.tolist(), strict=True
        )
    ]
    return list(
        map(
            KeyRecord,
            held.key_data,
            held.rolling_start_interval_number.tolist(),
            held.rolling_period.tolist(),
            held.transmission_risk_level.tolist(),
            held.report_type.tolist(),
            onsets,
        )
    )


def run_sync(
    config: AgentConfig,
    store: AgentStore,
    now: float,
    client: httpx.Client | None = None,
    *,
    exposure: Callable[[], ExposureConfig] | None = None,
) -> SyncResult:
    """One check for exposures (see the module docstring) of the device whose settings are
    ``config`` and whose records are ``store``, at ``now``, over ``client`` (one of its own
    when None), scored with the configuration ``exposure`` gives when the risk is assessed
    (:func:`.risk.load_exposure_config` when None). A check that fails is recorded with its
    error (``status``) before the error is raised (AGENT-16)."""
    result = SyncResult()
    scoring = exposure or partial(risk.load_exposure_config, config)
    try:
        _check(config, store, scoring, now, client, result)
    except PheTraceError as exc:
        _record_check(store, now, result, error=str(exc))
        raise
    return result


def _check(
    cfg: AgentConfig,
    store: AgentStore,
    exposure: Callable[[], ExposureConfig],
    now: float,
    client: httpx.Client | None,
    result: SyncResult,
) -> None:
    state = store.load(SyncState)
    sources = _sources(cfg, store)
    done: dict[str, dict[str, float]] = {
        s.name: processed_files(state.processed if s.home else state.regions.get(s.name, {}), now)
        for s in sources
    }
    own_client = client is None
    http = client or httpx.Client(timeout=cfg.http_timeout_s, follow_redirects=True)
    verified: list[tuple[str, export.TemporaryExposureKeyExport]] = []
    checked: dict[str, list[tuple[str, export.TemporaryExposureKeyExport]]] = {}
    try:
        for source in sources:
            result.regions[source.name] = {"listed": 0, "checked": 0, "error": None}
            try:
                files = _fetch_new(cfg, store, http, source, done[source.name], result, now)
            except (SyncError, AgentConfigError) as exc:
                if source.home:
                    raise
                # another region that fails is skipped: home and the others are checked
                result.regions[source.name]["error"] = str(exc)
                log.error("region %s not checked: %s", source.name, exc)
                continue
            result.regions[source.name]["checked"] = len(files)
            checked[source.name] = files
            verified.extend(files)
    finally:
        if own_client:
            http.close()
    result.nothing_published = not any(r["listed"] for r in result.regions.values())
    diagnosis_keys = _current_keys(verified, own={k.key_data for k in store.teks()})
    result.files_checked = len(verified)
    result.keys_checked = len(diagnosis_keys)
    still_open = _match_and_keep(cfg, store, now, diagnosis_keys, state.open_keys, result)
    for name, files in checked.items():
        done[name].update({path: _processed_at(path, content, now) for path, content in files})
        # every later sighting is later than the floor: a skipped file stays skipped
        done[name].update(dict.fromkeys(result.files_skipped.get(name, ()), float(now)))
    home = next((s.name for s in sources if s.home), None)
    store.save(
        SyncState(
            processed=dict(
                done[home] if home is not None else processed_files(state.processed, now)
            ),
            regions={s.name: dict(done[s.name]) for s in sources if not s.home},
            open_keys=still_open,
        )
    )
    assessment = risk.assess(store, now, exposure(), retention_days=cfg.retention_days)
    result.risk_level = assessment.level
    result.last_exposure_day = assessment.last_exposure_day
    result.days = assessment.days
    _record_check(store, now, result)
    previous = store.load(Notified).level or "low"
    if risk.rank(assessment.level) > risk.rank(previous):
        notify(assessment, enabled=cfg.desktop_notifications)
        store.save(Notified(level=assessment.level, at=now))
    if result.rejected_files:
        names = ", ".join(sorted(result.rejected_files))
        log.error("refused export files: %s", names)


def _record_check(
    store: AgentStore, now: float, result: SyncResult, error: str | None = None
) -> None:
    entry = CheckRecord(at=now, **result.summary(), error=error)
    store.add_check_result(utc_day(now), entry)
    store.save(entry)


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def status_summary(
    config: AgentConfig,
    store: AgentStore,
    now: float,
    *,
    exposure: Callable[[], ExposureConfig] | None = None,
) -> dict[str, Any]:
    """What ``phe-trace agent status`` shows (AGENT-16); ``exposure`` as for
    :func:`run_sync`."""
    last = store.load(CheckRecord)
    scoring = exposure() if exposure is not None else risk.load_exposure_config(config)
    assessment = risk.assess(store, now, scoring, retention_days=config.retention_days)
    report = store.load(ReportState)
    warnings = [w.message for w in warning_items(store.load(Warnings), now)]
    return {
        "analytics": analytics.status(config, store, now),
        "risk_level": assessment.level,
        "last_exposure_day": assessment.last_exposure_day,
        "last_check": _iso(last.at),
        "last_check_error": last.error,
        "last_check_rejected_files": last.rejected_files,
        "stored_keys": len(store.teks()),
        "stored_sighting_windows": store.sighting_windows(),
        "reported": _iso(report.published_at),
        "warnings": warnings[-5:],
        "regions": _regions_status(config, store, last.regions),
    }


def _regions_status(
    config: AgentConfig, store: AgentStore, last: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every followed region (home first): where its exports are, the key id it must
    name, how many of its files are processed and the last check's error for it."""
    state = store.load(SyncState)
    try:
        sources = _sources(config, store)
    except SyncError:
        return []
    return [
        {
            "name": s.name,
            "home": s.home,
            "index_url": s.index_url,
            "key_id": s.key_id,
            "files_processed": len(state.processed if s.home else state.regions.get(s.name, {})),
            "last_error": (last.get(s.name) or {}).get("error"),
        }
        for s in sources
    ]
