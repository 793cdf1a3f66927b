"""The export worker (``phe-trace server export``) killed mid-write, again and again.

A batch padded to many keys and split into many files takes the worker seconds to
write; SIGKILL lands in the middle of it. After every kill: ``index.txt`` lists only
files that exist, verify and form complete batches, and no file under a final name is
half written. A final run completes the work without rewriting any file already
published (SPEC PUB-28, PUB-29, PUB-31, PUB-33, EXP-11, EXP-13).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from phe_trace.protocol import export
from phe_trace.server.signing import load_signing_keys

from .load import PublishLoad
from .serverproc import PHE_TRACE, ServerProcess, TestAuthority

SETTINGS = {
    "PHE_TRACE_EXPORT_MIN_RECORDS": "20000",
    "PHE_TRACE_EXPORT_PADDING_RANGE": "0",
    "PHE_TRACE_EXPORT_MAX_RECORDS": "1000",
    "PHE_TRACE_EXPORT_LEASE_SECONDS": "10",
}


def _check_store(root: Path, public_key: object) -> dict[str, bytes]:
    """Every final-named zip verifies; the index lists existing files of complete batches."""
    files = {}
    for path in sorted(root.glob("ZZ/*.zip")):
        data = path.read_bytes()
        export.verify_export_zip(data, public_key)  # type: ignore[arg-type]
        files[f"ZZ/{path.name}"] = data
    index = root / "ZZ" / "index.txt"
    listed = export.parse_index(index.read_bytes()) if index.exists() else ()
    missing = [p for p in listed if p not in files]
    assert not missing, f"index lists files that do not exist: {missing}"
    contents = [
        export.decode_export_bin(export.unpack_export_zip(files[p]).export_bin) for p in listed
    ]
    export.check_batches_complete(contents)
    return files


@pytest.mark.slow
def test_killed_export_worker_leaves_no_half_file(tmp_path: Path) -> None:
    """Four SIGKILLs mid-export; every intermediate state is consistent (PUB-33)."""
    authority = TestAuthority(tmp_path / "ha")
    server = ServerProcess(tmp_path / "data", **SETTINGS)
    server.register(authority)
    server.start()
    load = PublishLoad(server.url, authority, clients=4).start()
    while len(load.result.acknowledged) < 20:
        time.sleep(0.05)
    published = set(load.stop().acknowledged)
    server.stop()
    (signing,) = load_signing_keys(server.data_dir / "signing-keys", "000")
    public_key = signing.private_key.public_key()
    store = server.data_dir / "exports"
    base = time.time() + 4 * 3600
    seen: dict[str, bytes] = {}
    after_kill: list[int] = []
    for attempt, delay in enumerate((1.5, 2.5, 3.5, 4.5)):
        worker = subprocess.Popen(  # our own CLI
            [*PHE_TRACE, "server", "export", "--data-dir", str(server.data_dir),
             "--now", str(base + attempt * 60), "--allow-future"],
            env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(delay)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        state = _check_store(store, public_key)
        after_kill.append(len(state))
        for name, data in state.items():
            assert seen.setdefault(name, data) == data, f"{name} was rewritten"
    server.export(base + 3600)  # leases of the killed workers have expired
    final = _check_store(store, public_key)
    for name, data in seen.items():
        assert final[name] == data, f"{name} was rewritten"
    listed = export.parse_index((store / "ZZ" / "index.txt").read_bytes())
    assert sorted(listed) == sorted(final), "a written file is missing from the index"
    keys = set()
    for name in listed:
        content = export.decode_export_bin(export.unpack_export_zip(final[name]).export_bin)
        keys.update(k.key_data for k in content.keys)
    assert published <= keys, "a published key is missing from the exports"
    assert min(after_kill) < len(final), f"no kill landed mid-export: {after_kill}"
