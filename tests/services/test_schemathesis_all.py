"""Schemathesis over every service's OpenAPI schema: no 5xx, answers as documented.

The services run on real uvicorn servers on loopback: the combined server (key server
with the verification service in it, as ``server run`` composes it), the verification
device API's own schema, and a leader and a helper aggregator reading the combined
server's analytics feed. Every operation of every schema is exercised, valid and invalid
by the schema, and every answer is checked against the schema (status documented,
body conforming, headers, content type). Routing errors (unknown paths, wrong methods,
TRACE) are checked by hand below, in the project's error shape (SPEC PUB-2, AGG-35,
PUB-38). ``PHE_TRACE_SCHEMATHESIS_EXAMPLES`` sets the examples per operation and mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from nacl.public import PrivateKey
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from phe_trace.aggregator import Aggregator, AggregatorSettings
from phe_trace.aggregator import create_app as create_aggregator_app
from phe_trace.hosting import create_app as create_host_app
from phe_trace.serving import LoopbackServer
from tests.server.conftest import make_settings

EXAMPLES = int(os.environ.get("PHE_TRACE_SCHEMATHESIS_EXAMPLES", "8"))
TOKEN = "peer-token-0123456789abcdef"
#: Valid by the schema yet refused for what a schema cannot say: a certificate and HMAC
#: (publish), a day in the clock's window (analytics upload, AGG-34), a live API key
#: (device API). Their refusals are correct answers; every other check still applies.
UNSATISFIABLE_BY_SCHEMA = {"/v1/publish", "/v1/analytics/reports", "/verify", "/certificate"}


@dataclass
class Services:
    host: str
    helper: str
    leader: str


def _aggregator(role: str, tmp: Path, ingest: str, helper: str | None) -> Aggregator:
    return Aggregator(
        AggregatorSettings(
            role=role,  # type: ignore[arg-type]
            database_url=f"sqlite:///{tmp / f'{role}.sqlite3'}",
            private_key=bytes(PrivateKey.generate()).hex(),  # type: ignore[arg-type]
            verify_key=bytes(range(32)).hex(),  # type: ignore[arg-type]
            peer_token=TOKEN,  # type: ignore[arg-type]
            helper_url=helper,
            ingest_url=ingest,
            min_batch_size=2,
        )
    )


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    tmp = tmp_path_factory.mktemp("services")
    host_app = create_host_app(make_settings(tmp, None, max_body_bytes=1_048_576), role="all")
    with LoopbackServer(host_app) as host:
        helper = _aggregator("helper", tmp, host.url, None)
        with LoopbackServer(create_aggregator_app(helper)) as helper_server:
            leader = _aggregator("leader", tmp, host.url, helper_server.url)
            with LoopbackServer(create_aggregator_app(leader)) as leader_server:
                yield Services(host.url, helper_server.url, leader_server.url)
            leader.close()
        helper.close()


def _schema_urls(s: Services) -> dict[str, str]:
    return {
        "host": f"{s.host}/openapi.json",
        "device-api": f"{s.host}/api/openapi.json",
        "helper": f"{s.helper}/openapi.json",
        "leader": f"{s.leader}/openapi.json",
    }


@pytest.mark.parametrize("service", ["host", "device-api", "helper", "leader"])
@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_every_operation_answers_as_documented(
    services: Services, service: str, mode: schemathesis.GenerationMode
) -> None:
    """PUB-2, AGG-35: generated requests never get a 5xx nor an undocumented answer."""
    url = _schema_urls(services)[service]
    schema = schemathesis.openapi.from_url(url)
    base_url = f"{services.host}/api" if service == "device-api" else None
    operations = [r.ok() for r in schema.get_all_operations()]
    assert operations
    headers = {"Authorization": f"Bearer {TOKEN}"} if service in ("helper", "leader") else {}
    tried = [0]
    for operation in operations:
        excluded = [positive_data_acceptance] if operation.path in UNSATISFIABLE_BY_SCHEMA else []

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            if headers and "authorization" not in {k.lower() for k in case.headers or {}}:
                case.headers = {**(case.headers or {}), **headers}
            tried[0] += 1
            response = case.call(base_url=base_url)
            checks_off = list(excluded)
            if response.status_code == 413:
                # A body over the endpoint's documented limit is refused before it is parsed,
                # whatever the schema says of its content; the refusal is in the project's
                # shape (PUB-2, AGG-35) and every other check still applies.
                assert response.json()["code"] == "payload_too_large"
                checks_off += [negative_data_rejection, positive_data_acceptance]
            case.validate_response(response, excluded_checks=checks_off)

        try:
            check()
        except Unsatisfiable:
            # no parameters and no body: nothing can be made schema-violating
            assert mode == schemathesis.GenerationMode.NEGATIVE
    print(f"schemathesis {service} {mode.name}: {len(operations)} operations, {tried[0]} cases")


def _error_shape(response: httpx.Response) -> None:
    body = response.json()
    code = body.get("code") or body.get("errorCode")
    assert isinstance(body.get("error"), str) and isinstance(code, str) and code, body


@pytest.mark.parametrize(
    ("base", "path"),
    [
        ("host", "/v1/publish"),
        ("host", "/healthz"),
        ("host", "/v1/analytics/reports"),
        ("host", "/.well-known/jwks.json"),
        ("host", "/api/verify"),
        ("helper", "/v1/aggregator/prepare"),
        ("leader", "/v1/aggregates"),
    ],
)
@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE", "PATCH"])
def test_wrong_methods_are_405_with_allow(
    services: Services, base: str, path: str, method: str
) -> None:
    """PUB-38: a method a path does not serve is 405 with ``Allow``, in the error shape."""
    r = httpx.request(method, getattr(services, base) + path)
    assert r.status_code == 405, (r.status_code, r.text)
    assert r.headers.get("allow"), r.headers
    _error_shape(r)


@pytest.mark.parametrize("base", ["host", "helper", "leader"])
@pytest.mark.parametrize("path", ["/nothing", "/v1/nothing", "/api/nothing", "/v1/exports/x/y/z"])
def test_unknown_paths_are_404_in_the_error_shape(services: Services, base: str, path: str) -> None:
    """PUB-38: an unknown path is a 404 with a stable code, never FastAPI's bare detail."""
    r = httpx.get(getattr(services, base) + path)
    assert r.status_code == 404, r.text
    _error_shape(r)


def test_publish_schema_refuses_an_empty_key_list(services: Services) -> None:
    """PUB-11: the schema says what the server does: at least one key."""
    schema = httpx.get(f"{services.host}/openapi.json").json()
    request = schema["components"]["schemas"]["PublishRequest"]["properties"]
    assert request["temporaryExposureKeys"]["minItems"] == 1


@pytest.mark.parametrize(
    ("base", "query"),
    [
        ("leader", "/v1/aggregates?day=1&day=2"),
        ("leader", "/v1/aggregates?day=0.0"),
        ("leader", "/v1/aggregates?day=+5"),
        ("leader", "/v1/aggregates?day=2932897"),  # after 9999-12-31: not a date
        ("host", "/v1/analytics/shares?role=leader&role=helper&day=1&metric=notified"),
        ("host", "/v1/analytics/shares?role=leader&day=1.0&metric=notified"),
    ],
)
def test_query_integers_are_digits_and_given_once(
    services: Services, base: str, query: str
) -> None:
    """PUB-38: a repeated query parameter, or an integer not in decimal digits, is a 400 in
    the error shape (the framework alone would take the last value, or ``0.0`` as 0)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.get(getattr(services, base) + query, headers=headers)
    assert r.status_code == 400, (r.status_code, r.text)
    _error_shape(r)
