"""``phe-trace server init`` and the admin commands as an operator types them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from phe_trace.serving import free_port

PASSWORD = "a long enough password"


def _run(cwd: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
        env=environ,
    )  # fmt: skip


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("phe-trace: error: ")
    return line


def _realms(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM vf_realms ORDER BY name")]


def test_init_refuses_bad_input_and_leaves_nothing(tmp_path: Path) -> None:
    """A too-short password or a realm name with a space: one line saying why, and no
    data directory at all. (SPEC OPS-4)"""
    short = _run(
        tmp_path, "server", "init", "--data-dir", "hd", "--password-stdin", stdin="short\n"
    )
    assert "at least 12 characters" in _one_error_line(short)
    spaced = _run(
        tmp_path, "server", "init", "--data-dir", "hd", "--realm", "my county",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert "(no spaces)" in _one_error_line(spaced)
    assert not (tmp_path / "hd").exists()


def test_init_then_admin_with_data_dir_before_after_and_from_the_environment(
    tmp_path: Path,
) -> None:
    """init sets up everything in one step and says what is next; every admin command
    takes --data-dir after the command, before it, or PHE_TRACE_DATA_DIR; a second init
    is refused. (SPEC OPS-4)"""
    done = _run(
        tmp_path, "server", "init", "--data-dir", "hd", "--realm", "county",
        "--username", "alice", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "realm county, administrator alice" in done.stdout
    assert "phe-trace server run --data-dir hd" in done.stdout
    assert "phe-trace server admin api-key" in done.stdout
    data = tmp_path / "hd"
    for name in ("keyserver.sqlite3", "verification.sqlite3", "verification-secret",
                 "signing-keys", "revision-token.keys"):  # fmt: skip
        assert (data / name).exists(), name
    assert _realms(data / "verification.sqlite3") == ["county"]
    after = _run(tmp_path, "server", "admin", "realms", "--data-dir", "hd")
    before = _run(tmp_path, "server", "admin", "--data-dir", "hd", "realms")
    from_env = _run(tmp_path, "server", "admin", "realms", PHE_TRACE_DATA_DIR=str(data))
    for result in (after, before, from_env):
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("county\t")
    key = _run(tmp_path, "server", "admin", "api-key", "--name", "app", "--realm", "county",
               "--data-dir", "hd")  # fmt: skip
    assert key.returncode == 0, key.stderr
    again = _run(tmp_path, "server", "init", "--data-dir", "hd", "--password-stdin",
                 stdin=PASSWORD + "\n")  # fmt: skip
    assert "already set up" in _one_error_line(again)
    assert _realms(data / "verification.sqlite3") == ["county"]


def test_admin_without_a_data_dir_makes_no_second_service(tmp_path: Path) -> None:
    """(SPEC OPS-4)"""
    result = _run(tmp_path, "server", "admin", "create", "--username", "bob",
                  "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert "server init" in _one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_admin_create_with_a_short_password_creates_no_realm(tmp_path: Path) -> None:
    """(SPEC OPS-4)"""
    init = _run(tmp_path, "server", "init", "--data-dir", "hd", "--password-stdin",
                stdin=PASSWORD + "\n")  # fmt: skip
    assert init.returncode == 0, init.stderr
    short = _run(tmp_path, "server", "admin", "create", "--username", "bob", "--realm", "new",
                 "--password-stdin", "--data-dir", "hd", stdin="short\n")  # fmt: skip
    assert "at least 12 characters" in _one_error_line(short)
    assert _realms(tmp_path / "hd" / "verification.sqlite3") == ["default"]


def test_export_refuses_a_now_after_the_real_clock(tmp_path: Path) -> None:
    """(SPEC OPS-4)"""
    far = _run(tmp_path, "server", "export", "--data-dir", "hd", "--now", "2099-01-01T00:00:00Z")
    assert "after the current time" in _one_error_line(far)
    assert not (tmp_path / "hd").exists()


def test_run_prints_where_it_answers_and_that_no_realm_exists(tmp_path: Path) -> None:
    """The start-up line names the URLs and the portal, and says how to make the first
    account while there is no realm. (SPEC OPS-4)"""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "phe_trace.cli", "server", "run", "--port", str(port),
         "--data-dir", str(tmp_path / "hd")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first, second = proc.stderr.readline(), proc.stderr.readline()
        base = f"http://127.0.0.1:{port}"
        assert f"portal {base}/portal/" in first and f"exports {base}/v1/exports/" in first
        assert f"JWKS {base}/.well-known/jwks.json" in first
        assert second.startswith("no realm yet: run `phe-trace server init --data-dir")
        deadline = time.monotonic() + 60
        while True:  # the line is true: the portal answers there
            try:
                page = httpx.get(f"{base}/portal/login", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.3)
        assert page.status_code == 200
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_one_database_url_moves_every_role_to_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """PHE_TRACE_DATABASE_URL set: init and `server run`'s combined app keep the key
    server's and the verification service's tables in that database; no SQLite file is
    made. (SPEC OPS-5)"""
    import psycopg

    from phe_trace.hosting import create_app
    from phe_trace.server import load_settings

    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    done = _run(tmp_path, "server", "init", "--data-dir", "hd", "--password-stdin",
                stdin=PASSWORD + "\n", PHE_TRACE_DATABASE_URL=plain)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "hd").glob("*.sqlite3"))
    with psycopg.connect(plain) as conn:
        assert conn.execute("SELECT name FROM vf_realms").fetchall() == [("default",)]
    app = create_app(load_settings(data_dir=tmp_path / "hd", database_url=plain))
    assert app.state.verification.engine.url.drivername.startswith("postgresql")
    assert not list((tmp_path / "hd").glob("*.sqlite3"))


def test_export_with_allow_future_runs_at_that_time(tmp_path: Path) -> None:
    """``--allow-future`` lets a drill export at a later time; without it the same command
    is refused. (SPEC OPS-4)"""
    at = "2099-01-01T00:00:00Z"
    done = _run(tmp_path, "server", "export", "--data-dir", "hd", "--now", at, "--allow-future")
    assert done.returncode == 0, done.stderr
    assert "batches:" in done.stdout
