"""Callback subscriptions of the gateway (SPEC FED-10).

A member registers ``PUT /diagnosiskeys/callback/{id}?url=…``; for each new download
batch the gateway sends ``GET <url>?batchTag=<tag>&date=<YYYY-MM-DD>`` to each
subscription, in batch order. Any 2xx answer completes the task; after
``callback_max_failures`` failed deliveries in a row the subscription is deleted.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from typing import Any

import httpx
from sqlalchemy.engine import Connection, Engine

from . import queries
from .errors import BatchRejectedError, GatewayNotFoundError
from .settings import GatewaySettings

__all__ = ["delete_callback", "deliver_callbacks", "list_callbacks", "put_callback"]

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _private(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise BatchRejectedError("the callback host does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local:
            return True
        if address in ipaddress.ip_network("100.64.0.0/10"):
            return True
    return False


def check_callback_url(url: str, settings: GatewaySettings) -> str:
    """The URL if it may be called back: HTTPS, no query, a public address (unless the
    gateway is configured for a private network, which also admits plain HTTP)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise BatchRejectedError("the callback URL does not parse") from None
    schemes = {"https", "http"} if settings.callback_allow_private else {"https"}
    if parts.scheme not in schemes or not parts.hostname:
        raise BatchRejectedError("the callback URL must be https with a host")
    if parts.query or parts.fragment:
        raise BatchRejectedError("the callback URL must not have a query")
    if _private(parts.hostname) and not settings.callback_allow_private:
        raise BatchRejectedError("the callback URL resolves to a private address")
    return url


def list_callbacks(engine: Engine, country: str) -> list[dict[str, str]]:
    """The country's subscriptions."""
    with engine.connect() as conn:
        rows = queries.callbacks_of(conn, country)
    return [{"callbackId": r.callback_id, "url": r.url} for r in rows]


def put_callback(
    engine: Engine, settings: GatewaySettings, country: str, callback_id: str, url: str
) -> None:
    """Create or replace subscription ``callback_id`` of ``country``."""
    if not callback_id or len(callback_id) > 64 or not set(callback_id) <= _ID_CHARS:
        raise BatchRejectedError("the callback id must be 1..64 of [A-Za-z0-9._-]")
    check_callback_url(url, settings)
    with engine.begin() as conn:
        queries.replace_callback(conn, country, callback_id, url)


def delete_callback(engine: Engine, country: str, callback_id: str) -> None:
    """Delete a subscription and its pending notifications; 404 when there is none."""
    with engine.begin() as conn:
        gone = queries.delete_callback(conn, country, callback_id)
    if not gone:
        raise GatewayNotFoundError("no such callback")


def _deliver_one(client: httpx.Client, url: str, task: Any) -> bool:
    try:
        answer = client.get(
            url,
            params={"batchTag": task.batch_tag, "date": task.day},
            headers={"User-Agent": "phe-trace gateway callback"},
        )
    except httpx.HTTPError:
        return False
    return 200 <= answer.status_code < 300


def deliver_callbacks(engine: Engine, settings: GatewaySettings, client: httpx.Client) -> int:
    """Send every pending notification, oldest first per subscription; returns how many
    were delivered. A subscription whose delivery fails waits for the next run."""
    delivered = 0
    with engine.connect() as conn:
        subs = queries.all_callbacks(conn)
    for sub in subs:
        with engine.connect() as conn:
            tasks = queries.pending_tasks(conn, sub.country, sub.callback_id)
        for task in tasks:
            ok = _deliver_one(client, sub.url, task)
            with engine.begin() as conn:
                if ok:
                    queries.delete_task(conn, task.id)
                    queries.reset_failures(conn, sub.country, sub.callback_id)
                    delivered += 1
                    continue
                _record_failure(conn, sub, settings)
            break  # in order: the next notification waits for this one
    return delivered


def _record_failure(conn: Connection, sub: Any, settings: GatewaySettings) -> None:
    failures = int(sub.failures) + 1
    if failures >= settings.callback_max_failures:
        queries.delete_callback(conn, sub.country, sub.callback_id)
    else:
        queries.set_failures(conn, sub.country, sub.callback_id, failures)
