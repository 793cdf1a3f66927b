"""Many concurrent publishing clients, and what the exports say afterwards.

Each client thread uploads 1–3 fresh random keys per request with its own certificate
(minted by the conformance checker's client for the registered test authority) and
records, per request, whether the server acknowledged it (HTTP 200) — only then are its
keys owed to the exports.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from phe_trace.conformance import ConformanceConfig, KeyServerClient, load_private_key
from phe_trace.conformance.client import day_keys
from phe_trace.protocol import export

from .serverproc import AUDIENCE, ISSUER, KID, ServerProcess, TestAuthority


@dataclass
class LoadResult:
    """Keys the server acknowledged, keys of requests that failed, statuses seen."""

    acknowledged: list[bytes] = field(default_factory=list)
    unacknowledged: list[bytes] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    bodies: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class PublishLoad:
    """``clients`` threads publishing to ``url`` until :meth:`stop`."""

    def __init__(self, url: str, authority: TestAuthority, clients: int = 32) -> None:
        self.config = ConformanceConfig(
            server=url,
            ha_key=load_private_key(authority.private_pem.read_bytes()),
            issuer=ISSUER,
            audience=AUDIENCE,
            kid=KID,
        )
        self.result = LoadResult()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def start(self) -> PublishLoad:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        return self.result

    def _run(self) -> None:
        rng = random.Random()
        with httpx.Client(timeout=10) as http:
            client = KeyServerClient(self.config, http)
            while not self._stop.is_set():
                keys = day_keys(time.time(), rng.randint(1, 3), first_day_back=rng.randint(1, 9))
                data = [k.key_data for k in keys]
                try:
                    response = client.publish(client.body(keys, time.time()))
                    status = str(response.status_code)
                    ok = status == "200" and response.json().get("insertedExposures") == len(keys)
                    body = response.text
                except httpx.HTTPError as exc:
                    status, ok, body = type(exc).__name__, False, ""
                    time.sleep(0.02)
                with self.result.lock:
                    self.result.statuses[status] += 1
                    (self.result.acknowledged if ok else self.result.unacknowledged).extend(data)
                    if not ok and body:
                        self.result.bodies.append(f"{status} {body}")


def exported_keys(server: ServerProcess) -> Counter[bytes]:
    """Every key of every export listed in the index, counted, after signature checks."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        public_key = export.load_public_key_pem(http.get("/v1/exports/signing-key.pem").content)
        index = http.get("/v1/exports/ZZ/index.txt")
        assert index.status_code == 200, index.status_code
        counts: Counter[bytes] = Counter()
        for path in export.parse_index(index.content):
            data = http.get(f"/v1/exports/{path}").content
            content = export.verify_export_zip(data, public_key)
            counts.update(k.key_data for k in (*content.keys, *content.revised_keys))
    return counts
