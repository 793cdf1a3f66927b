"""The device agent killed (SIGKILL) in the middle of a check for exposures.

The agent syncs in a child process against a real HTTP export host that holds one file
back; the child is killed while it waits. The next check must not download again any
file an earlier *completed* check processed, must finish the interrupted work, and must
end with exactly the exposure an uninterrupted copy of the same device computes — no
window counted twice. (SPEC AGENT-13, AGENT-15)
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.serving import serve
from tests.agent.conftest import T0
from tests.agent.exports import confirmed, export_zip, new_signer, publish, spki
from tests.agent.http_host import ExportHost

DAY = 86_400
#: The child: open the agent on its data directory and run one check.
CHILD = """
import json, sys
from phe_trace.agent import Agent, AgentConfig
cfg = AgentConfig(**json.loads(sys.argv[1]))
agent = Agent.open(cfg, now=float(sys.argv[2]))
agent.sync(float(sys.argv[2]))
"""


@dataclass
class HoldingHost(ExportHost):
    """An export host that keeps the connection of ``hold`` paths open until released."""

    hold: set[str] = field(default_factory=set)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "").removeprefix("/v1/exports/")
        if path in self.hold:
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            return  # its client is gone: the connection closes unanswered
        await super().__call__(scope, receive, send)


def _settings(data_dir: Path, url: str, key: str) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir),
        "radio": "sim",
        "key_server_url": url,
        "export_public_keys": key,
        "download_retries": 0,
        "download_backoff_s": 0.0,
        "desktop_notifications": False,
        "http_timeout_s": 30.0,
    }


def _open(settings: dict[str, Any], now: float, seed: int | None = None) -> Agent:
    rng = random.Random(seed) if seed is not None else None
    return Agent.open(AgentConfig(**settings), now=now, radio=SimRadio(), rng=rng)


def _meet(a: Agent, b: Agent, start: float, minutes: int) -> None:
    t = start
    while t < start + minutes * 60:
        a.tick(t)
        b.tick(t)
        b.radio.inject(a.radio.current_payload(), rssi=-55, unix_time=t)  # type: ignore[union-attr]
        t += 300


def test_agent_killed_mid_sync_resumes_without_double_counting(tmp_path: Path) -> None:
    """Kill during file 5 of 6; the resumed check equals an uninterrupted device."""
    host = HoldingHost()
    signer = new_signer()
    with serve(host) as url:
        host.url = url
        settings = _settings(tmp_path / "b", url, spki(signer))
        a = _open(_settings(tmp_path / "a", url, spki(signer)), T0, seed=1)
        b = _open(settings, T0, seed=2)
        for day in range(3):  # an hour together on each of three days
            _meet(a, b, T0 + day * DAY + 9 * 3600, 60)
        a_keys = sorted(a.store.teks(), key=lambda k: k.rolling_start_interval_number)
        a.close()
        now = T0 + 3 * DAY + 6 * 3600
        b.close()
        shutil.copytree(tmp_path / "b", tmp_path / "ref")

        def zip_of(i: int) -> bytes:  # files 0..2 carry a's keys, 3..5 decoys
            keys = [confirmed(os.urandom(16), a_keys[0].rolling_start_interval_number)]
            if i < len(a_keys):
                k = a_keys[i]
                keys.append(confirmed(k.key_data, k.rolling_start_interval_number, dsos=i))
            return export_zip(signer, keys, 0, 1)

        zips = [zip_of(i) for i in range(6)]
        first = publish(host.files, zips[:2], int(T0))
        b = _open(settings, now)
        b.sync(now)  # completes: files 1 and 2 processed
        b.close()
        rest = publish(host.files, zips[2:], int(T0) + 2 * 3600)
        paths = [*first, *rest]
        host.hold = {paths[4]}
        host.requests.clear()
        child = subprocess.Popen(  # the agent, killed while file 5 is held back
            [sys.executable, "-c", CHILD, json.dumps(settings), str(now + 3600)]
        )
        assert host.held.wait(timeout=60), "the child never reached file 5"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        host.hold = set()
        host.release.set()
        killed_requests = [p for p, _ in host.requests]
        host.requests.clear()
        b = _open(settings, now + 7200)
        resumed = b.sync(now + 7200)
        b.close()
        downloads = [p for p, _ in host.requests if p.endswith(".zip")]

        ref = _open(_settings(tmp_path / "ref", url, spki(signer)), now)
        reference = ref.sync(now + 7200)  # everything at once, never interrupted
        ref.close()

    assert set(paths[2:4]) <= set(killed_requests)  # the killed check had got that far
    assert not set(downloads) & set(first), "a file of a completed check was downloaded again"
    assert sorted(downloads) == sorted(rest), "the interrupted files were not all fetched"
    assert resumed.rejected_files == {} and resumed.interrupted is None
    assert reference.days and resumed.days == reference.days, "exposure counted differently"
    assert resumed.risk_level == reference.risk_level
    assert resumed.last_exposure_day == reference.last_exposure_day
