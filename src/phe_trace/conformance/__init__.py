"""Conformance checker: hold any GAEN-compatible key server to SPEC §11–§12 over HTTP.

A role on the wire (``ARCHITECTURE.md`` layer 2): it imports only ``protocol``, ``crypto`` and
``errors`` and talks to the server under test with httpx, as a device and as a health
authority registered for conformance testing would. ``phe-trace conformance`` prints one
row per check with the SPEC requirement ids it exercises; see the CLI's ``--help`` and
``protocol_spec/SPEC.md`` §16 for the battery and how to register the test authority.
"""

from __future__ import annotations

from .client import ConformanceConfig, KeyServerClient, TestKey, load_private_key
from .errors import ConformanceConfigError, ConformanceError, ConformanceFailedError
from .model import FAIL, PASS, SKIP, CheckResult
from .runner import ALL_CHECKS, run_conformance

__all__ = [
    "ALL_CHECKS",
    "FAIL",
    "PASS",
    "SKIP",
    "CheckResult",
    "ConformanceConfig",
    "ConformanceConfigError",
    "ConformanceError",
    "ConformanceFailedError",
    "KeyServerClient",
    "TestKey",
    "load_private_key",
    "run_conformance",
]
