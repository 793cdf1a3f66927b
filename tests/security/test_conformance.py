"""The conformance battery against our own key server: a real ``phe-trace server run``.

The checker runs as an auditor would run it — the ``phe-trace conformance`` command, over
HTTP, with a conformance-test health authority registered beforehand — and every check
must pass. A last test gives it a wrong export key and a wrong key id, to show the
battery can fail. (SPEC CONF-1, CONF-2, CONF-3, CONF-4, PUB-1, PUB-2, PUB-3, PUB-5,
PUB-6, PUB-7, PUB-11, PUB-12, PUB-13, PUB-14, PUB-16, PUB-18, PUB-19, PUB-20, PUB-22,
PUB-23, PUB-24, PUB-25, PUB-27, PUB-31, PUB-33, EXP-2, EXP-6, EXP-11, EXP-14)
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.serverproc import (
    AUDIENCE,
    ISSUER,
    KID,
    PHE_TRACE,
    ServerProcess,
    TestAuthority,
)

MIN_RECORDS = 40


@pytest.fixture(scope="module")
def keyserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("conformance")
    authority = TestAuthority(root / "ha")
    server = ServerProcess(
        root / "data",
        PHE_TRACE_EXPORT_MIN_RECORDS=str(MIN_RECORDS),
        PHE_TRACE_EXPORT_PADDING_RANGE="5",
    )
    server.register(authority)
    server.start()
    pem = root / "export.pub.pem"
    import httpx

    pem.write_bytes(httpx.get(server.url + "/v1/exports/signing-key.pem").content)
    try:
        yield server, root
    finally:
        server.stop()


def _conformance(
    server: ServerProcess, root: Path, *extra: str, export_key: Path | None = None
) -> subprocess.CompletedProcess[str]:
    key = export_key or root / "export.pub.pem"
    return subprocess.run(
        [
            *PHE_TRACE, "conformance", "--server", server.url,
            "--ha-key", str(root / "ha" / "ha.pem"), "--issuer", ISSUER,
            "--audience", AUDIENCE, "--kid", KID, "--export-key", str(key),
            "--min-export-records", str(MIN_RECORDS), *extra,
        ],
        capture_output=True, text=True, timeout=300, check=False, env=server.env,
    )  # fmt: skip


def _rows(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_our_server_passes_every_check(keyserver: tuple[ServerProcess, Path]) -> None:
    """CONF-2, CONF-4, PUB-25: the publish battery passes with minted certificates (every
    refusal followed by a clean upload of the same keys), and exports written later hold
    every key the first run recorded."""
    server, root = keyserver
    recorded = root / "published.json"
    first = _conformance(server, root, "--json", "--only", "publish", "--record-published",
                         str(recorded))  # fmt: skip
    rows = _rows(first.stdout)
    failed = [r for r in rows if r["status"] == "fail"]
    assert first.returncode == 0 and not failed, (failed, first.stderr)
    assert rows and all(r["status"] == "pass" for r in rows), rows
    assert len(json.loads(recorded.read_text())["keys"]) == 4  # 3 keys + today's key
    server.export(time.time() + 2 * 86400)  # every window, today's key included, is due
    second = _conformance(server, root, "--json", "--only", "exports", "--expect-published",
                          str(recorded))  # fmt: skip
    rows = _rows(second.stdout)
    assert second.returncode == 0, (rows, second.stderr)
    assert all(r["status"] == "pass" for r in rows), rows


def test_table_output_names_requirement_ids(keyserver: tuple[ServerProcess, Path]) -> None:
    """The human report is a table with the requirement ids and a summary line."""
    server, root = keyserver
    done = _conformance(server, root, "--only", "exports")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "EXP-14" in done.stdout and "PUB-31" in done.stdout
    assert "0 failed" in done.stdout


def test_a_failing_check_fails_the_run(
    keyserver: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    """A wrong export key or kid: those rows fail and the exit is non-zero (CONF-3)."""
    server, root = keyserver
    wrong = TestAuthority(tmp_path / "wrong")
    done = _conformance(server, root, "--json", "--only", "exports", export_key=wrong.public_pem)
    rows = {r["check"]: r for r in _rows(done.stdout)}
    assert done.returncode != 0
    assert "checks failed" in done.stderr
    signature_row = rows["every file verifies with the export key"]
    assert signature_row["status"] == "fail"
    assert "export_bad_signature" in str(signature_row["detail"])
    wrong_kid = _conformance(server, root, "--json", "--only", "publish", "--kid", "nope")
    publish_rows = _rows(wrong_kid.stdout)
    assert wrong_kid.returncode != 0
    assert next(r for r in publish_rows if r["requirements"] == ["PUB-1"])["status"] == "fail"


def test_a_fresh_server_passes_the_export_checks(tmp_path: Path) -> None:
    """Before any batch the index exists and is empty: its checks pass, the rest skip (EXP-14)."""
    authority = TestAuthority(tmp_path / "ha")
    server = ServerProcess(tmp_path / "data")
    server.register(authority)
    server.start()
    try:
        import httpx

        pem = httpx.get(server.url + "/v1/exports/signing-key.pem").content
        (tmp_path / "export.pub.pem").write_bytes(pem)
        done = _conformance(server, tmp_path, "--json", "--only", "exports")
    finally:
        server.stop()
    rows = {r["check"]: r for r in _rows(done.stdout)}
    assert done.returncode == 0, (rows, done.stderr)
    assert rows["index.txt: text/plain, oldest first, valid names"]["status"] == "pass"
    assert rows["cache headers: index short-lived, zips long-lived; 404"]["status"] == "pass"
    assert all(r["status"] in ("pass", "skip") for r in rows.values()), rows
