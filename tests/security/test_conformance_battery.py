"""The conformance battery holds every check CONF-1 lists, and each named check can fail.

``CONF_1_ROWS`` is CONF-1's list, item by item, with the requirement ids and a word of the
title of the row that runs it: removing a check from the battery fails the first test. A
lax key server on a loopback port (it accepts every upload, stores the keys of every
request, chaff included, and never refuses a certificate) shows that the chaff, replay and
oversized-body checks are not vacuous: each fails against it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.conformance import ConformanceConfig
from phe_trace.conformance.runner import ALL_CHECKS, run_conformance
from phe_trace.serving import serve
from tests.agent.http_host import Receive, Scope, Send

#: CONF-1's list: item → (requirement ids of its row, a word of the row's title).
CONF_1_ROWS: dict[str, tuple[tuple[str, ...], str]] = {
    "a valid upload": (("PUB-1",), "valid upload"),
    "fields and padding of answers": (("PUB-1", "PUB-22"), "padded"),
    "malformed JSON": (("PUB-2",), "malformed JSON"),
    "wrong types": (("PUB-2",), "wrong JSON types"),
    "odd bodies (never 5xx)": (("PUB-2",), "never 5xx"),
    "an oversized body": (("PUB-3",), "oversized"),
    "a certificate by another key": (("PUB-5",), "another key"),
    "expired": (("PUB-5",), "expired"),
    "of an unknown issuer": (("PUB-5", "PUB-8"), "issuer"),
    "keys changed after certification": (("PUB-6", "HMAC-3"), "changed after certification"),
    "certificate replay": (("PUB-7",), "accepted once"),
    "too many keys": (("PUB-11",), "more keys than the maximum"),
    "dropped bad keys": (("PUB-12",), "bad keys dropped"),
    "a repeated upload": (("PUB-24",), "uploaded again"),
    "overlapping keys": (("PUB-13",), "overlapping"),
    "duplicate keys": (("PUB-18",), "the same key twice"),
    "four keys sharing a start": (("PUB-14",), "sharing a start"),
    "today's key": (("PUB-16",), "today's"),
    "revision with and without the token": (("PUB-19", "PUB-21"), "revision token"),
    "an illegal transition": (("PUB-20",), "confirmed → likely"),
    "chaff": (("PUB-23",), "chaff"),
    "index.txt format and order": (("EXP-14", "PUB-31"), "index.txt"),
    "cache headers and 404": (("PUB-31",), "cache headers"),
    "zip members and dates": (("EXP-1", "EXP-8"), "zip members"),
    "signatures": (("EXP-6", "EXP-11"), "verifies with the export key"),
    "header and key order": (("EXP-2", "EXP-3", "EXP-13"), "key order"),
    "complete split batches": (("EXP-11", "PUB-28"), "split batches"),
    "embargo": (("PUB-16",), "embargo"),
    "padding minimum": (("PUB-27",), "padded to the minimum"),
    "immutability": (("PUB-33",), "never changes"),
    "published keys exported": (("PUB-25",), "published earlier"),
}


def test_the_battery_runs_every_check_conf_1_lists() -> None:
    """CONF-1: one row per check the requirement lists, each naming its requirement ids."""
    rows = [(check.requirements, check.title) for check in ALL_CHECKS]
    for item, (requirements, word) in CONF_1_ROWS.items():
        matching = [title for ids, title in rows if ids == requirements and word in title]
        assert len(matching) == 1, f"CONF-1 lists {item!r}: no single row {requirements} {word!r}"
    assert all(ids for ids, _ in rows), "a row names no requirement"


class LaxKeyServer:
    """Accepts every upload with 200 and stores the keys of every request, chaff included."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            keys = [k["key"] for k in json.loads(body)["temporaryExposureKeys"]]
        except (ValueError, KeyError, TypeError):
            await _answer(send, 400, {"error": "bad", "code": "bad_request", "padding": "AA"})
            return
        new = set(keys) - self.keys
        self.keys |= new
        token = base64.b64encode(secrets.token_bytes(16)).decode()
        answer = {"revisionToken": token, "insertedExposures": len(new), "padding": "AAAA"}
        await _answer(send, 200, {**answer, "error": "", "code": ""})


async def _answer(send: Send, status: int, value: dict[str, Any]) -> None:
    body = json.dumps(value).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def lax_rows() -> Iterator[dict[str, str]]:
    with serve(LaxKeyServer()) as url:
        config = ConformanceConfig(
            server=url,
            ha_key=ec.generate_private_key(ec.SECP256R1()),
            issuer="https://lax.invalid",
            audience="lax",
            kid="lax",
        )
        with httpx.Client(timeout=15) as http:
            rows, _ = run_conformance(config, time.time(), exports=False, http=http)
    yield {row.title: row.status for row in rows}


@pytest.mark.parametrize("item", ["chaff", "certificate replay", "an oversized body"])
def test_a_lax_server_fails_the_named_publish_checks(lax_rows: dict[str, str], item: str) -> None:
    """CONF-1: against a server that stores chaff, takes a certificate twice and any body
    size, the chaff, certificate-replay and oversized-body rows fail."""
    word = CONF_1_ROWS[item][1]
    titles = [t for t in lax_rows if word in t]
    assert len(titles) == 1, f"no row for {item!r}"
    assert lax_rows[titles[0]] == "fail"
    assert lax_rows["valid upload is accepted with a revision token"] == "pass"  # a control
