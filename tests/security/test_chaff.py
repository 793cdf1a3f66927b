"""Chaff (``X-Chaff``) cannot be told from a real upload by what the server answers.

Against a real ``phe-trace server run``: for uploads of the same number of keys, a chaff
request and a real one get the same status, the same headers, the same JSON fields, a
revision token of exactly the same length and padding from the same configured range —
so the answer's size class does not tell them apart. Nothing of the chaff is stored.
(SPEC PUB-22, PUB-23)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from phe_trace.conformance import ConformanceConfig, KeyServerClient, load_private_key
from phe_trace.conformance.client import day_keys
from tests.reliability.serverproc import AUDIENCE, ISSUER, KID, ServerProcess, TestAuthority

PAD_MIN, PAD_RANGE = 1024, 1024


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyServerClient]:
    root: Path = tmp_path_factory.mktemp("chaff")
    authority = TestAuthority(root / "ha")
    server = ServerProcess(
        root / "data",
        PHE_TRACE_RESPONSE_PADDING_MIN_BYTES=str(PAD_MIN),
        PHE_TRACE_RESPONSE_PADDING_RANGE_BYTES=str(PAD_RANGE),
    )
    server.register(authority)
    server.start()
    config = ConformanceConfig(
        server=server.url, ha_key=load_private_key(authority.private_pem.read_bytes()),
        issuer=ISSUER, audience=AUDIENCE, kid=KID,
    )  # fmt: skip
    try:
        with httpx.Client(timeout=30) as http:
            yield KeyServerClient(config, http)
    finally:
        server.stop()


def _headers(response: httpx.Response) -> set[str]:
    return {k.lower() for k in response.headers if k.lower() != "date"}


@pytest.mark.parametrize("n_keys", [1, 7, 14])
def test_chaff_answer_has_the_shape_of_a_real_one(client: KeyServerClient, n_keys: int) -> None:
    """Status, headers, fields, token length and padding range match (SPEC PUB-23, PUB-22)."""
    real, chaff = [], []
    for _ in range(4):
        now = time.time()
        real.append(client.publish(client.body(day_keys(now, n_keys), now)))
        fake_body = client.body(day_keys(now, n_keys), now)
        chaff.append(client.publish(fake_body, headers={"X-Chaff": "1"}))
        # the chaff's certificate was not used: the same body now publishes for real
        assert client.publish(fake_body).json()["insertedExposures"] == n_keys
    for r, c in zip(real, chaff, strict=True):
        assert r.status_code == c.status_code == 200
        assert _headers(r) == _headers(c)
        rj, cj = r.json(), c.json()
        assert set(rj) == set(cj)
        assert (rj["insertedExposures"], rj["code"], rj["error"]) == (
            cj["insertedExposures"], cj["code"], cj["error"],
        )  # fmt: skip
        assert len(rj["revisionToken"]) == len(cj["revisionToken"])
        for body in (rj, cj):
            assert PAD_MIN <= len(body["padding"]) <= PAD_MIN + PAD_RANGE
    sizes = [len(x.content) - len(x.json()["padding"]) for x in real + chaff]
    assert len(set(sizes)) == 1, f"unpadded sizes differ: {sizes}"


def test_chaff_with_a_garbage_body_still_looks_like_success(client: KeyServerClient) -> None:
    """A chaff body need not be a valid upload; the answer is still success-shaped."""
    fake = client.publish(b'{"temporaryExposureKeys": "no"}', headers={"X-Chaff": "yes"})
    assert fake.status_code == 200
    assert {"revisionToken", "insertedExposures", "padding"} <= set(json.loads(fake.content))
