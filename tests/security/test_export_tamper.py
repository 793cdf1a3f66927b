"""Exports that are not exactly what the health authority signed are refused by the agent.

A real export host over HTTP serves the file; the agent's check must refuse it, report
it, match nothing from it — and try it again at the next check, when an intact copy is
matched. Cases: signed by another key, truncated in transit, one key byte modified
after signing. (SPEC AGENT-14, EXP-10, EXP-11, EXP-4)
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.serving import serve
from tests.agent.conftest import T0
from tests.agent.exports import confirmed, export_zip, new_signer, publish, spki
from tests.agent.http_host import ExportHost

DAY = 86_400
NOW = T0 + DAY + 6 * 3600


@pytest.fixture
def host() -> Iterator[ExportHost]:
    h = ExportHost()
    with serve(h) as url:
        h.url = url
        yield h


def _pair(tmp_path: Path, host: ExportHost, trusted: str) -> tuple[Agent, Agent]:
    """``b`` hears ``a`` for an hour on day 0; ``b`` trusts the key ``trusted``."""
    agents = []
    for name, seed in (("a", 1), ("b", 2)):
        config = AgentConfig(
            data_dir=tmp_path / name, radio="sim", key_server_url=host.url,
            export_public_keys=trusted, download_retries=0, download_backoff_s=0.0,
            desktop_notifications=False,
        )  # fmt: skip
        agents.append(Agent.open(config, now=T0, radio=SimRadio(), rng=random.Random(seed)))
    a, b = agents
    t = T0 + 8 * 3600
    while t < T0 + 9 * 3600:
        a.tick(t)
        b.tick(t)
        b.radio.inject(a.radio.current_payload(), rssi=-55, unix_time=t)  # type: ignore[union-attr]
        t += 300
    return a, b


def _replace_member(data: bytes, name: str, change: Callable[[bytes], bytes]) -> bytes:
    members = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            members[info.filename] = zf.read(info)
    members[name] = change(members[name])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, content in members.items():
            zf.writestr(member, content)
    return out.getvalue()


def _flip_key_byte(export_bin: bytes) -> bytes:
    """Change one byte inside the first key_data (field 7 → field 1, 16 bytes)."""
    at = export_bin.index(b"\x0a\x10", 16) + 2  # TemporaryExposureKey.key_data tag, length
    return export_bin[:at] + bytes([export_bin[at] ^ 0x01]) + export_bin[at + 1 :]


TAMPERING: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) - 37],
    "modified key": lambda data: _replace_member(data, "export.bin", _flip_key_byte),
}


@pytest.mark.parametrize("case", ["other key", *TAMPERING])
def test_tampered_export_is_refused_then_retried(
    tmp_path: Path, host: ExportHost, case: str
) -> None:
    """Refused with an export_* code, nothing matched; the intact file matches later."""
    authority = new_signer()
    a, b = _pair(tmp_path, host, spki(authority))
    (tek,) = a.store.teks()
    key = confirmed(tek.key_data, tek.rolling_start_interval_number)
    intact = export_zip(authority, [key], 0, 1)
    if case == "other key":
        served = export_zip(new_signer(), [key], 0, 1)
    else:
        served = TAMPERING[case](intact)
    (path,) = publish(host.files, [served], int(T0 + DAY))
    refused = b.sync(NOW)
    assert set(refused.rejected_files) == {path}
    assert refused.rejected_files[path].startswith("export_")
    assert refused.matched_sightings == 0 and refused.risk_level == "low"
    assert b.status(NOW)["last_exposure_day"] is None
    host.files[path] = intact  # the CDN now serves the right bytes
    accepted = b.sync(NOW + 3600)
    assert accepted.rejected_files == {} and accepted.matched_sightings > 0
    a.close()
    b.close()
