"""Property-based API test: schemathesis against the app's OpenAPI schema (SPEC PUB-2).

Generated requests (valid and invalid by the schema) go to a real uvicorn server; no
response may be a 5xx or break the documented schema. Bounded to stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance

from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext, create_app, register_health_authority
from phe_trace.serving import LoopbackServer

from .conftest import make_settings
from .helpers import NOW, Authority


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    ctx = ServerContext.open(
        make_settings(tmp, None, max_body_bytes=1_048_576), clock=SettableClock(NOW)
    )
    authority = Authority()
    register_health_authority(
        ctx.engine,
        issuer=authority.issuer,
        audience=authority.audience,
        name="HA",
        public_keys={authority.kid: authority.public_pem},
    )
    with LoopbackServer(create_app(context=ctx)) as server:
        yield server
    ctx.close()


@pytest.fixture(scope="module")
def api_schema(api_server: LoopbackServer):
    return schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")


#: Every operation the key server app serves, the mounted analytics ingestion included.
KEYSERVER_PATHS = (
    "/v1/publish",
    "/v1/exports",
    "/v1/analytics",
    "/v1/statistics",
    "/healthz",
    "/metrics",
)


def _all(api_schema) -> list[schemathesis.APIOperation]:  # type: ignore[no-untyped-def]
    return [result.ok() for result in api_schema.get_all_operations()]


@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_api_has_no_server_errors(api_schema, mode: schemathesis.GenerationMode) -> None:
    """Every generated request gets a documented non-5xx answer (SPEC PUB-2)."""
    operations = [
        op
        for op in (result.ok() for result in api_schema.get_all_operations())
        if op.path.startswith(KEYSERVER_PATHS)
    ]
    assert {op.path for op in operations} >= {
        "/v1/publish",
        "/healthz",
        "/metrics",
        "/v1/analytics/reports",
        "/v1/analytics/shares",
    }
    assert all(op.path.startswith(KEYSERVER_PATHS) for op in _all(api_schema))
    for operation in operations:
        examples = 60 if operation.path == "/v1/publish" else 15

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            # A schema-valid publish still needs a valid certificate and HMAC, which a
            # schema cannot express: its refusal (400/401) is correct, not a failure.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Unsatisfiable:
            # no parameters and no body: nothing can be made schema-violating
            assert mode == schemathesis.GenerationMode.NEGATIVE


@pytest.mark.parametrize(
    "params",
    [
        {"after": str(2**70)},
        {"after": "-1"},
        {"after": str(2**31)},
        {"day": str(2**31)},
        {"day": str(2**64)},
        {"limit": str(2**64)},
        {"limit": "0"},
    ],
)
def test_analytics_paging_out_of_range_is_400(
    tmp_path: Path, database_url: str, params: dict[str, str]
) -> None:
    """Out-of-range paging values are refused with a 4xx, never a database 500 (PUB-2).

    The largest accepted values (32-bit columns) still answer 200 on SQLite and PostgreSQL.
    """
    ctx = ServerContext.open(make_settings(tmp_path, database_url), clock=SettableClock(NOW))
    query = {"role": "leader", "day": "20000", "metric": "notified", **params}
    try:
        with LoopbackServer(create_app(context=ctx)) as live:
            response = httpx.get(f"{live.url}/v1/analytics/shares", params=query)
            largest = httpx.get(
                f"{live.url}/v1/analytics/shares",
                params={**query, "after": str(2**31 - 1), "limit": "5000", "day": str(2**31 - 1)},
            )
    finally:
        ctx.close()
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    assert largest.status_code == 200, largest.text
    assert largest.json() == {"shares": [], "next_after": 2**31 - 1}
