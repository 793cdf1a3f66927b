"""Gates of the slower whole-deployment suites, which ``.ci/run`` runs after ``make test``."""

from __future__ import annotations

import os

import pytest

#: Set to 1 to run the deployment suites (real nginx, a real browser, the READMEs' commands).
DEPLOYMENT_ENV = "PHE_TRACE_DEPLOYMENT_TESTS"

deployment = pytest.mark.skipif(
    os.environ.get(DEPLOYMENT_ENV) != "1",
    reason=f"whole-deployment suite, run by .ci/run with {DEPLOYMENT_ENV}=1",
)
