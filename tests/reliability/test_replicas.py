"""Three key-server processes (separate ports, as separate hosts) on one PostgreSQL.

Every replica accepts publishes, one replica is SIGKILLed under load, and export workers
write to one S3 bucket through the database's batch lease: the lease holder is SIGKILLed
mid-batch, a worker started while the lease is live writes nothing, and one started after
it expired completes the batch. Every acknowledged key is exported exactly once, no batch
window is missing or doubled, and the index lists each file once (SPEC SCALE-6, SCALE-2,
PUB-29).
"""

from __future__ import annotations

import itertools
import shutil
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from phe_trace.protocol import export
from phe_trace.server.signing import load_signing_keys

from ..s3server import MotoServer, store_env
from .load import PublishLoad
from .serverproc import PHE_TRACE, ServerProcess, TestAuthority
from .test_export_crash_s3 import SCALE_SUITE, _check_bucket, _objects, _zip_count

pytestmark = SCALE_SUITE

SETTINGS = {
    "PHE_TRACE_EXPORT_MIN_RECORDS": "4000",
    "PHE_TRACE_EXPORT_PADDING_RANGE": "0",
    "PHE_TRACE_EXPORT_MAX_RECORDS": "1000",
    "PHE_TRACE_EXPORT_LEASE_SECONDS": "10",
}


def _replicas(tmp_path: Path, url: str, env: dict[str, str], n: int) -> list[ServerProcess]:
    """``n`` servers on one database, sharing signing and revision keys as a deployment does."""
    first = ServerProcess(tmp_path / "r0", PHE_TRACE_DATABASE_URL=url, **env)
    first.start()
    servers = [first]
    for i in range(1, n):
        data = tmp_path / f"r{i}"
        data.mkdir()
        shutil.copytree(first.data_dir / "signing-keys", data / "signing-keys")
        shutil.copy2(first.data_dir / "revision-token.keys", data / "revision-token.keys")
        servers.append(ServerProcess(data, PHE_TRACE_DATABASE_URL=url, **env).start())
    return servers


def _worker(server: ServerProcess, now: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # our own CLI
        [*PHE_TRACE, "server", "export", "--data-dir", str(server.data_dir), "--now", str(now),
         "--allow-future"],
        env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_replicas_share_publishes_and_the_export_lease(tmp_path: Path, postgres_url: str) -> None:
    """SCALE-6: any replica publishes; a killed lease holder's batch is completed once."""
    with MotoServer() as moto:
        bucket = moto.bucket()
        s3 = moto.client()
        authority = TestAuthority(tmp_path / "ha")
        servers = _replicas(tmp_path, postgres_url, {**SETTINGS, **store_env(moto, bucket)}, 3)
        try:
            servers[0].register(authority)
            loads = [PublishLoad(s.url, authority, clients=2).start() for s in servers]
            while min(len(load.result.acknowledged) for load in loads) < 10:
                time.sleep(0.05)
            servers[2].kill()  # acknowledged publishes of a killed replica must survive
            acknowledged = [set(load.stop().acknowledged) for load in loads]
            assert all(acknowledged)
        finally:
            for s in servers:
                s.stop()
        (signing,) = load_signing_keys(servers[0].data_dir / "signing-keys", "000")
        public_key = signing.private_key.public_key()
        base = time.time() + 3 * 3600

        holder = _worker(servers[0], base)
        deadline = time.monotonic() + 60
        while _zip_count(s3, bucket) < 2 and holder.poll() is None:
            assert time.monotonic() < deadline, "the worker wrote no objects"
            time.sleep(0.01)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        written = _objects(s3, bucket)
        _check_bucket(written, public_key)
        held = {n.rsplit("-", 1)[0] for n in written if n.endswith(".zip")}
        assert len(held) == 1, "the killed worker was writing one batch"

        waiting = _worker(servers[1], base + 1)  # the killed holder's lease is still live
        assert waiting.wait(timeout=300) == 0
        now_there = _objects(s3, bucket)
        for name in now_there:
            if name.rsplit("-", 1)[0] in held:
                assert name in written, f"{name}: a worker wrote a batch it did not lease"
            if name in written:
                assert now_there[name] == written[name], f"{name} was overwritten"

        taker = _worker(servers[1], base + 60)  # the lease has expired: take over
        assert taker.wait(timeout=300) == 0
        final = _objects(s3, bucket)
        listed = _check_bucket(final, public_key)
        for name, data in written.items():
            assert final[name] == data, f"{name} was overwritten"
        assert len(listed) == len(set(listed))
        assert sorted(listed) == sorted(n for n in final if n.endswith(".zip"))

        engine = sa.create_engine(postgres_url)
        with engine.connect() as conn:
            batches = conn.execute(
                sa.text("SELECT start_timestamp, end_timestamp, status FROM ks_export_batches")
            ).all()
            files = conn.execute(sa.text("SELECT name FROM ks_export_files")).scalars().all()
        engine.dispose()
        windows = sorted((b.start_timestamp, b.end_timestamp) for b in batches)
        assert all(b.status == "complete" for b in batches)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(windows)), windows
        assert sorted(files) == sorted(listed)

        exported: list[bytes] = []
        for name in listed:
            content = export.decode_export_bin(export.unpack_export_zip(final[name]).export_bin)
            exported.extend(k.key_data for k in content.keys)
        everyone = set().union(*acknowledged)
        assert everyone <= set(exported), "an acknowledged publish is missing from the exports"
        assert len(exported) == len(set(exported)), "a key is exported twice"
