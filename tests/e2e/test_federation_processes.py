"""Two cities' key servers and a federation gateway as three processes on loopback.

City A (``DE``) and city B (``FR``) each run ``phe-trace server run`` on a data
directory of their own; the gateway runs ``phe-trace gateway run`` on its own SQLite
file. Every federation step is the command an operator's cron job runs
(``phe-trace server federation sync``, ``phe-trace gateway batch``). Two real agents
(simulator radio) meet the day before: the A person reports positive to A's key server,
the B device follows only B's exports and is notified.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.conformance import ConformanceConfig, KeyServerClient, load_private_key
from phe_trace.conformance import client as conformance
from phe_trace.gateway.trust import sign_pem
from phe_trace.protocol import export
from tests.gateway.support import Country, pem
from tests.reliability.serverproc import (
    AUDIENCE,
    ISSUER,
    KID,
    PHE_TRACE,
    ServerProcess,
    TestAuthority,
    clean_env,
    free_port,
)

DAY = 86_400
#: The padding of small exports would hide nothing here; keep the files small.
SERVER_SETTINGS = {
    "PHE_TRACE_EXPORT_MIN_RECORDS": "0",
    "PHE_TRACE_EXPORT_PADDING_RANGE": "0",
    # Ten-minute batches written as soon as they close, so that one export run a window
    # ahead (``--allow-future``, these data directories are scratch ones) writes the
    # batch that holds a key imported now.
    "PHE_TRACE_TRUNCATE_WINDOW_SECONDS": "60",
    "PHE_TRACE_EXPORT_PERIOD_SECONDS": "600",
    "PHE_TRACE_EXPORT_MIN_WINDOW_AGE_SECONDS": "0",
}


def _run(
    args: list[str], env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*PHE_TRACE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"phe-trace {' '.join(args)}: {done.returncode}: {done.stderr}")
    return done


class GatewayProcess:
    """``phe-trace gateway run`` on a fixed port and SQLite file (restartable)."""

    def __init__(self, directory: Path, anchor: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.env = clean_env(
            PHE_TRACE_GATEWAY_DATABASE_URL=f"sqlite:///{directory / 'gateway.sqlite3'}",
            PHE_TRACE_GATEWAY_TRUST_ANCHOR=str(anchor),
        )
        self.db = directory / "gateway.sqlite3"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        return _run(["gateway", *args], self.env).stdout

    def start(self) -> GatewayProcess:
        log = self.log.open("ab")
        self.process = subprocess.Popen(  # our own CLI
            [*PHE_TRACE, "gateway", "run", "--port", str(self.port),
             "--batching-interval", "3600"],
            env=self.env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                httpx.get(self.url + "/diagnosiskeys/download/2000-01-01", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the gateway did not answer")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()

    def keys(self) -> int:
        engine = sa.create_engine(f"sqlite:///{self.db}")
        with engine.connect() as conn:
            count = int(conn.execute(sa.text("SELECT count(*) FROM gw_keys")).scalar_one())
        engine.dispose()
        return count


@dataclass
class City:
    """A key server process and the environment of its federation commands."""

    server: ServerProcess
    country: Country
    federation_env: dict[str, str]

    def sync(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["server", "federation", "sync", "--data-dir", str(self.server.data_dir)]
        return _run(args, self.federation_env, check)

    def count(self, sql: str) -> int:
        engine = sa.create_engine(f"sqlite:///{self.server.data_dir / 'keyserver.sqlite3'}")
        with engine.connect() as conn:
            value = int(conn.execute(sa.text(sql)).scalar_one())
        engine.dispose()
        return value


def _write_member(directory: Path, country: Country) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "signing": directory / "signing.pem",
        "key": directory / "signing.key",
        "auth": directory / "auth.pem",
    }
    files["signing"].write_text(pem(country.signing_cert))
    files["auth"].write_text(pem(country.auth_cert))
    files["key"].write_bytes(
        country.signing_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[tuple[City, City, GatewayProcess]]:
    operator = ec.generate_private_key(ec.SECP256R1())
    anchor = tmp_path / "trust-anchor.pem"
    anchor.write_bytes(
        operator.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    gateway = GatewayProcess(tmp_path / "gateway", anchor)
    cities = []
    started: list[ServerProcess] = []
    try:
        for code in ("DE", "FR"):
            country = Country.create(code)
            files = _write_member(tmp_path / f"member-{code}", country)
            for kind, path in (("authentication", files["auth"]), ("signing", files["signing"])):
                signature = sign_pem(path.read_text(), operator)
                gateway.cli(
                    "member", "add", "--certificate", str(path), "--type", kind,
                    "--operator-signature", signature,
                )  # fmt: skip
            server = ServerProcess(
                tmp_path / f"city-{code}", PHE_TRACE_REGION=code, **SERVER_SETTINGS
            )
            fed_env = clean_env(
                **{k: v for k, v in server.env.items() if k.startswith("PHE_TRACE_")},
                PHE_TRACE_FEDERATION_GATEWAY_URL=gateway.url,
                PHE_TRACE_FEDERATION_COUNTRY=code,
                PHE_TRACE_FEDERATION_SIGNING_CERTIFICATE=str(files["signing"]),
                PHE_TRACE_FEDERATION_SIGNING_KEY=str(files["key"]),
                PHE_TRACE_FEDERATION_TRUST_ANCHOR=str(anchor),
                PHE_TRACE_FEDERATION_CLIENT_CERTIFICATE=str(files["auth"]),
                PHE_TRACE_FEDERATION_FORWARD_HEADERS="true",
                PHE_TRACE_FEDERATION_UPLOAD_DELAY_SECONDS="0",
            )
            started.append(server.start())
            cities.append(City(server, country, fed_env))
        gateway.start()
        yield cities[0], cities[1], gateway
    finally:
        gateway.stop()
        for server in started:
            server.stop()


def _exported(server: ServerProcess, region: str) -> Counter[bytes]:
    """How often each key appears in the export files ``server`` serves for ``region``."""
    base = f"{server.url}/v1/exports/"
    index = httpx.get(f"{base}{export.index_file_name(region)}", timeout=10)
    seen: Counter[bytes] = Counter()
    if index.status_code == 404:
        return seen
    for path in export.parse_index(index.content):
        content = export.decode_export_bin(
            export.unpack_export_zip(httpx.get(base + path, timeout=10).content).export_bin
        )
        seen.update(k.key_data for k in content.keys)
    return seen


def _export_until(server: ServerProcess, wanted: set[bytes]) -> Counter[bytes]:
    """An export run one batch window (and one created_at window) ahead, so the window
    holding the keys imported now has closed and is written; what B's exports then hold."""
    server.export(time.time() + 600 + 60)
    return _exported(server, "FR")


def _meet(a: Agent, a_radio: SimRadio, b: Agent, b_radio: SimRadio, start: float) -> None:
    """A and B side by side for 40 minutes; B's radio hears A every minute."""
    for t in range(int(start), int(start) + 40 * 60, 60):
        a.tick(t)
        payload = a_radio.current_payload()
        assert payload is not None
        b_radio.inject(payload, rssi=-55, unix_time=float(t))
        b.tick(t)


@pytest.mark.slow
def test_a_key_published_in_one_city_notifies_a_device_of_the_other(
    tmp_path: Path, federation: tuple[City, City, GatewayProcess]
) -> None:
    """FED-11, FED-12, FED-13: the A person's key, published to A's key server only,
    goes up to the gateway, comes down to B verified, is in B's own export and notifies
    the B device that met the A person. A gateway outage in the middle fails B's sync
    with one line; the retry after the gateway's restart completes it. Repeated syncs,
    a SIGKILL and restart of B's key server and later export runs duplicate nothing:
    the gateway holds the key once, B stores it once, B's exports list it once, A never
    gets it back, and the B device's second check adds no exposure."""
    city_a, city_b, gateway = federation
    now = time.time()
    contact = (now // DAY - 1) * DAY + 10 * 3600  # 10:00 UTC yesterday
    a_radio, b_radio = SimRadio(), SimRadio()
    person_a = Agent.open(
        AgentConfig(data_dir=tmp_path / "person-a", radio="sim"),
        now=contact, radio=a_radio, rng=random.Random(1),
    )  # fmt: skip
    spki_b = httpx.get(f"{city_b.server.url}/v1/exports/signing-keys", timeout=10).json()
    device_b = Agent.open(
        AgentConfig(
            data_dir=tmp_path / "device-b",
            radio="sim",
            key_server_url=city_b.server.url,
            region="FR",
            export_public_keys=spki_b["keys"][0]["public_key_spki_base64"],
            desktop_notifications=False,
            download_retries=0,
        ),
        now=contact, radio=b_radio, rng=random.Random(2),
    )  # fmt: skip
    try:
        _meet(person_a, a_radio, device_b, b_radio, contact)
        # The A person reports positive to A's key server (a certificate of A's authority).
        authority = TestAuthority(tmp_path / "authority-a")
        city_a.server.register(authority)
        teks = person_a.store.teks()
        keys = [conformance.TestKey(k.key_data, k.rolling_start_interval_number) for k in teks]
        config = ConformanceConfig(
            server=city_a.server.url,
            ha_key=load_private_key(authority.private_pem.read_bytes()),
            issuer=ISSUER, audience=AUDIENCE, kid=KID,
        )  # fmt: skip
        with httpx.Client(timeout=30) as http:
            client = KeyServerClient(config, http)
            answer = client.publish(client.body(keys, time.time()))
        assert answer.status_code == 200, answer.text
        published = {k.key_data for k in keys}

        assert "uploaded: 1 keys" in city_a.sync().stdout
        gateway.cli("batch")
        gateway.kill()  # the gateway goes down before B downloads
        failed = city_b.sync(check=False)
        assert failed.returncode != 0
        assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
        assert city_b.count("SELECT count(*) FROM ks_federated_keys") == 0
        gateway.start()  # back on the same port and database; the retry completes
        assert "1 keys imported" in city_b.sync().stdout

        for _ in range(2):  # repeated syncs on both sides, and B's server restarted between
            city_a.sync()
            gateway.cli("batch")
            city_b.sync()
            city_b.server.kill()
            city_b.server.start()
        assert gateway.keys() == 1
        assert city_b.count("SELECT count(*) FROM ks_federated_keys") == 1
        assert city_b.count("SELECT count(*) FROM ks_federation_uploads") == 0
        assert city_a.count("SELECT count(*) FROM ks_federated_keys") == 0

        exported = _export_until(city_b.server, published)
        assert {k: exported[k] for k in published} == {k: 1 for k in published}
        assert not _exported(city_a.server, "FR")  # A's exports stay A's own region

        with httpx.Client(timeout=30) as http:
            first = device_b.sync(time.time(), http)
        assert first.new_windows > 0 and first.risk_level == "high"
        assert (device_b.store.get_meta("notified") or {}).get("level") == "high"

        city_a.sync()
        gateway.cli("batch")
        city_b.sync()
        city_b.server.export(time.time() + 290)
        assert _exported(city_b.server, "FR")[next(iter(published))] == 1
        with httpx.Client(timeout=30) as http:
            again = device_b.sync(time.time(), http)
        assert again.new_windows == 0 and again.risk_level == "high"
    finally:
        person_a.close()
        device_b.close()
