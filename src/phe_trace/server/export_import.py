"""Import another key server's published export files (SPEC FED-15).

Reads the other authority's ``index.txt``, fetches each listed file not imported before,
verifies it with that authority's export signing key and stores its keys as non-local
keys of this server's region with the configured origin (the path of FED-13, so the
same duplicate and loop rules hold). A file that fails to download or verify is
reported and tried again at the next run; nothing of it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.protocol import efgs, export
from phe_trace.protocol.diagnosis_key import DiagnosisKey
from phe_trace.protocol.errors import ExportError

from .context import ServerContext
from .federation import FederationError, store_federated

__all__ = ["ExportSource", "ImportReport", "import_exports"]

#: Largest index and export file fetched (bytes).
MAX_INDEX_BYTES = 1 << 20
MAX_FILE_BYTES = 20 << 20
_NO_ONSET = 4000  # "no symptom information" in the federation encoding (FED-14)


@dataclass(frozen=True)
class ExportSource:
    """Another authority's exports: ``index_url``, the root its relative paths hang off,
    its export signing key and the origin its keys get here."""

    name: str
    index_url: str
    export_root: str
    public_key: ec.EllipticCurvePublicKey
    origin: str


@dataclass
class ImportReport:
    """What one run imported."""

    files: int = 0
    keys_imported: int = 0
    keys_known: int = 0
    keys_dropped: int = 0
    refused: list[str] = field(default_factory=list)


def _fetch(client: httpx.Client, url: str, limit: int) -> bytes:
    try:
        with client.stream("GET", url) as answer:
            if answer.status_code != 200:
                raise FederationError(f"{url}: status {answer.status_code}")
            data = bytearray()
            for chunk in answer.iter_bytes():
                data.extend(chunk)
                if len(data) > limit:
                    raise FederationError(f"{url}: larger than {limit} bytes")
    except httpx.HTTPError as exc:
        raise FederationError(f"{url}: {type(exc).__name__}") from None
    return bytes(data)


def _batch_key(key: DiagnosisKey, origin: str) -> efgs.BatchKey:
    onset = key.days_since_onset_of_symptoms
    return efgs.BatchKey(
        key_data=key.key_data,
        rolling_start_interval_number=key.rolling_start_interval_number,
        rolling_period=key.rolling_period,
        transmission_risk_level=key.transmission_risk_level,
        visited_countries=(),
        origin=origin,
        report_type=int(key.report_type),
        days_since_onset_of_symptoms=_NO_ONSET if onset is None else onset,
    )


def _index_entries(data: bytes) -> Iterable[str]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise FederationError("index.txt is not US-ASCII") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("/") and ".." not in line and line.endswith(".zip"):
            yield line


def import_exports(
    ctx: ServerContext, source: ExportSource, client: httpx.Client, now: float
) -> ImportReport:
    """Import every verified, not yet imported file listed in the source's index."""
    from .storage.federation_queries import imported_names

    label = f"export:{source.name}"[:64]
    report = ImportReport()
    entries = list(_index_entries(_fetch(client, source.index_url, MAX_INDEX_BYTES)))
    with ctx.engine.connect() as conn:
        done = imported_names(conn, label)
    for path in entries:
        if path in done:
            continue
        try:
            data = _fetch(client, source.export_root.rstrip("/") + "/" + path, MAX_FILE_BYTES)
            content = export.verify_export_zip(data, source.public_key)
        except (FederationError, ExportError) as exc:
            report.refused.append(f"{path}: {exc}")
            continue
        keys = [_batch_key(k, source.origin) for k in content.keys]
        imported, known, dropped = store_federated(ctx, label, path, keys, now)
        report.files += 1
        report.keys_imported += imported
        report.keys_known += known
        report.keys_dropped += dropped
    return report
