"""The one loader of test vectors in ``protocol_spec/vectors/``.

Every vector file is a JSON object with a ``provenance`` block saying where it came
from: ``kind`` is ``spec`` (published by the specification's authors), ``independent``
(another implementation's known answers) or ``generated`` (our own seeded generator,
named in ``generator``; such files are checked by an independent verifier in the tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).resolve().parent.parent / "protocol_spec" / "vectors"
_KINDS = {"spec", "independent", "generated"}


def load_vectors(name: str) -> dict[str, Any]:
    """Load ``protocol_spec/vectors/<name>.json`` and check its provenance block."""
    data: dict[str, Any] = json.loads((VECTORS_DIR / f"{name}.json").read_text())
    provenance = data.get("provenance")
    if not isinstance(provenance, dict) or provenance.get("kind") not in _KINDS:
        raise AssertionError(f"vector file {name}.json has no valid provenance block")
    if provenance["kind"] == "generated" and "generator" not in provenance:
        raise AssertionError(f"generated vector file {name}.json does not name its generator")
    if provenance["kind"] != "generated" and "source" not in provenance:
        raise AssertionError(f"vector file {name}.json does not name its source")
    return data
