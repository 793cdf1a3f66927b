"""The keys a device trusts to have signed what it downloads (SPEC AGENT-14, AGG-26).

The health authority's export signing keys, as configured: they verify every export file
a check matches (:mod:`.sync`) and the signed statistics configuration (:mod:`.analytics`).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.protocol import export
from phe_trace.protocol.errors import ExportError

from .errors import AgentConfigError

__all__ = ["load_trusted_keys"]


def load_trusted_keys(values: list[str]) -> list[ec.EllipticCurvePublicKey]:
    """The health authority's export keys: base64 SPKI DER values or PEM file paths."""
    keys = []
    for value in values:
        try:
            if value.startswith(("/", "./", "~")) or value.endswith(".pem"):
                keys.append(export.load_public_key_pem(Path(value).expanduser().read_bytes()))
            else:
                keys.append(export.load_public_key_spki_base64(value))
        except (OSError, ExportError) as exc:
            raise AgentConfigError(
                f"export public key {value[:40]!r} cannot be used: {exc}"
            ) from None
    if not keys:
        raise AgentConfigError(
            "no export public key configured (PHE_TRACE_AGENT_EXPORT_PUBLIC_KEYS): "
            "refusing to match keys whose origin cannot be checked"
        )
    return keys
