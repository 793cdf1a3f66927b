"""Property-based fuzzing of the device API with schemathesis: bad input never yields a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import start_live


def test_device_api_never_answers_5xx(tmp_path: Path, sqlite_url: str) -> None:
    """Generated requests (valid and invalid) get 2xx/4xx JSON with an errorCode (SPEC VER-2)."""
    running, live = start_live(tmp_path, sqlite_url, verify_rate_limit=100_000)
    try:
        schema = schemathesis.openapi.from_url(live.url + "/api/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} == {"/verify", "/certificate"}
        for operation in operations:
            strategy = st.one_of(
                operation.as_strategy(),
                operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
            )

            @given(case=strategy)
            @settings(
                max_examples=50,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def check(case: Any) -> None:
                headers = dict(case.headers or {})
                headers.pop("X-Chaff", None)
                if headers.get("X-API-Key") is None or len(str(headers["X-API-Key"])) % 2:
                    headers["X-API-Key"] = live.api_key
                response = case.call(base_url=live.url + "/api", headers=headers)
                assert response.status_code < 500, (case.body, response.text)
                if response.status_code != 200:
                    assert response.json().get("errorCode"), (response.status_code, case.body)

            check()
    finally:
        running.__exit__(None, None, None)
        live.service.close()
