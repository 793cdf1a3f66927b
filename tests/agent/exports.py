"""Build signed GAEN export files and an index for the agent's sync tests."""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.protocol import export
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

REGION = "ZZ"


def new_signer(key_id: str = "310") -> export.EcdsaSigner:
    return export.EcdsaSigner(
        ec.generate_private_key(ec.SECP256R1()), export.SignatureInfo(key_id, "v1")
    )


def spki(signer: export.EcdsaSigner) -> str:
    return export.public_key_spki_base64(signer.public_key)


def export_zip(
    signer: export.EcdsaSigner, keys: Iterable[DiagnosisKey], start: int, end: int
) -> bytes:
    content = export.TemporaryExposureKeyExport(start, end, REGION, keys=tuple(keys))
    return export.build_export_zip(content, [signer])


def confirmed(key_data: bytes, start: int, dsos: int = 0) -> DiagnosisKey:
    return DiagnosisKey(
        key_data,
        start,
        144,
        transmission_risk_level=0,
        report_type=ReportType.CONFIRMED_TEST,
        days_since_onset_of_symptoms=dsos,
    )


def publish(files: dict[str, bytes], batches: list[bytes], first_start: int) -> list[str]:
    """Put export zips under hourly names and (re)write the index; return their paths."""
    paths = []
    for k, data in enumerate(batches):
        start = first_start + 3600 * k
        path = export.export_file_name(REGION, start, start + 3600, 1)
        files[path] = data
        paths.append(path)
    existing = [p for p in files if p.endswith(".zip")]
    files[export.index_file_name(REGION)] = export.format_index(sorted(existing))
    return paths
