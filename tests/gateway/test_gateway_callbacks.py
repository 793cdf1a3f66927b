"""Callback subscriptions: registration rules and notification of new download batches."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from phe_trace.gateway.app import run_scheduled
from phe_trace.gateway.service import Gateway
from tests.gateway.support import Country


class _Receiver(http.server.BaseHTTPRequestHandler):
    calls: list[str]
    status = 200

    def do_GET(self) -> None:
        type(self).calls.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"calls": [], "status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/efgs-callback", handler
    server.shutdown()
    server.server_close()


def test_subscriber_is_called_for_each_new_batch_in_order(
    client: httpx.Client,
    gateway: Gateway,
    countries: dict[str, Country],
    receiver: tuple[str, type[_Receiver]],
) -> None:
    """FED-10: a registered callback is listed, gets GET ?batchTag=&date= for each new
    download batch in order, and is gone after DELETE (then 404)."""
    de, fr = countries["DE"], countries["FR"]
    url, handler = receiver
    headers = fr.headers()
    assert (
        client.put("/diagnosiskeys/callback/main", params={"url": url}, headers=headers).status_code
        == 200
    )
    assert client.get("/diagnosiskeys/callback", headers=headers).json() == [
        {"callbackId": "main", "url": url}
    ]
    assert client.get("/diagnosiskeys/callback", headers=de.headers()).json() == []
    with httpx.Client() as http:
        de.upload(client, [de.key()], "one")
        run_scheduled(gateway, http)
        de.upload(client, [de.key()], "two")
        run_scheduled(gateway, http)
        run_scheduled(gateway, http)  # nothing new: no call
    assert handler.calls == [
        "/efgs-callback?batchTag=20260601-1&date=2026-06-01",
        "/efgs-callback?batchTag=20260601-2&date=2026-06-01",
    ]
    assert client.delete("/diagnosiskeys/callback/main", headers=headers).status_code == 200
    answer = client.delete("/diagnosiskeys/callback/main", headers=headers)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


def test_failing_subscription_is_retried_then_deleted(
    client: httpx.Client,
    gateway: Gateway,
    countries: dict[str, Country],
    receiver: tuple[str, type[_Receiver]],
) -> None:
    """FED-10: a failed notification is sent again at the next run; after the configured
    number of failures in a row (2 here) the subscription is deleted."""
    de, fr = countries["DE"], countries["FR"]
    url, handler = receiver
    handler.status = 500
    client.put("/diagnosiskeys/callback/cb", params={"url": url}, headers=fr.headers())
    de.upload(client, [de.key()], "one")
    with httpx.Client() as http:
        run_scheduled(gateway, http)
        assert client.get("/diagnosiskeys/callback", headers=fr.headers()).json() != []
        run_scheduled(gateway, http)
        run_scheduled(gateway, http)
    assert len(handler.calls) == 2
    assert client.get("/diagnosiskeys/callback", headers=fr.headers()).json() == []


@pytest.mark.parametrize(
    "url",
    ["ftp://example.org/cb", "http://127.0.0.1/cb?x=1", "not a url", "https://"],
)
def test_bad_callback_urls_are_refused(
    client: httpx.Client, countries: dict[str, Country], url: str
) -> None:
    """FED-10: a callback URL that is not http(s) with a host, or that has a query, is 400."""
    answer = client.put(
        "/diagnosiskeys/callback/x", params={"url": url}, headers=countries["FR"].headers()
    )
    assert answer.status_code == 400 and answer.json()["code"] == "batch_rejected"


def test_private_addresses_need_the_private_network_setting(gateway: Gateway) -> None:
    """FED-10: by default a callback must be https and resolve to a public address."""
    from phe_trace.gateway.callbacks import check_callback_url
    from phe_trace.gateway.errors import BatchRejectedError

    strict = gateway.settings.model_copy(update={"callback_allow_private": False})
    for url in ("https://127.0.0.1/cb", "https://10.1.2.3/cb", "http://93.184.216.34/cb"):
        with pytest.raises(BatchRejectedError):
            check_callback_url(url, strict)
    assert check_callback_url("https://93.184.216.34/cb", strict)
