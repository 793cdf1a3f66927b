"""Publish uploads are padded to one size class, whatever the number of keys (AGENT-18).

The agent reports through a recording HTTP host (real uvicorn) that answers the GAEN
verification and publish calls; every publish body is parsed with the key server's wire
model, so the padded upload is also shown to be a valid publish request.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any

import pytest

from phe_trace.agent import Agent
from phe_trace.protocol.publish import PublishRequest
from phe_trace.serving import serve

from .conftest import T0

DAY = 86_400


class RecordingServices:
    """``/api/verify``, ``/api/certificate`` and ``/v1/publish`` that record the publishes."""

    def __init__(self) -> None:
        self.published: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer: dict[str, Any]
        if scope["path"] == "/api/verify":
            answer = {"token": "t" * 40, "testtype": "confirmed", "symptomDate": None}
        elif scope["path"] == "/api/certificate":
            answer = {"certificate": "c" * 600}
        else:
            self.published.append(body)
            answer = {"revisionToken": "r" * 64, "insertedExposures": 1, "warnings": []}
        data = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


@pytest.fixture
def services() -> Iterator[tuple[RecordingServices, str]]:
    recorder = RecordingServices()
    with serve(recorder) as url:
        yield recorder, url


def _report(agent: Agent, url: str, now: float) -> None:
    agent.config = agent.config.model_copy(
        update={"key_server_url": url, "verification_url": url, "desktop_notifications": False}
    )
    agent.report("12345678", now)


def test_uploads_of_1_and_14_keys_have_the_same_size(
    make_agent, services: tuple[RecordingServices, str]
) -> None:
    """AGENT-18: publish bodies of 1 and 14 keys, and a revision, are one whole multiple of
    8,192 bytes, with at least 1 KiB of random base64 padding."""
    recorder, url = services
    one = make_agent("one", now=T0)
    _report(one, url, T0 + 3600)
    many = make_agent("many", now=T0, seed=2)
    for day in range(14):
        many.tick(T0 + day * DAY + 60)
    _report(many, url, T0 + 13 * DAY + 3600)
    many.revise("87654321", T0 + 13 * DAY + 7200)  # with the revision token: same size

    requests = [PublishRequest.model_validate_json(body) for body in recorder.published]
    assert [len(r.temporary_exposure_keys) for r in requests] == [1, 14, 14]
    sizes = {len(body) for body in recorder.published}
    assert len(sizes) == 1, sizes  # one size class, whatever the key count
    assert sizes.pop() % 8192 == 0  # whole 8 KiB classes
    for request in requests:
        assert len(request.padding) >= 1024  # GAEN client guidance: at least 1 KiB
        try:
            base64.b64decode(request.padding, validate=True)
        except binascii.Error:
            pytest.fail("padding is not base64")
    assert requests[0].padding != requests[1].padding  # random, not a constant
