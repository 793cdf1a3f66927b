"""Every subcommand, a table of bad arguments and environments: one line on stderr naming
the problem, a non-zero exit, never a traceback (SPEC CLI-1).

Commands that would serve or run for long (``server run``, ``aggregator run``,
``gateway run``, ``agent run``, ``agent room``, ``demo``) run as real processes with a
deadline: a bad value must stop them at once. The others run in this process through
:func:`phe_trace.cli.main` (the console entry point), which is what turns errors into a
line; anything else that escapes it is a traceback a user would have seen.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from phe_trace.cli import main

LONG = "n" * 300  # one path component longer than any file system allows


@dataclass(frozen=True)
class Case:
    """``argv`` with ``{file}``, ``{dir}``, ``{missing}``, ``{long}``, ``{binary}`` filled in."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    stdin: str = ""

    @property
    def name(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return " ".join([env, *self.argv]).strip()[:120]


def _cases() -> Iterator[Case]:
    # A file where the directory belongs, and a name too long. (A missing parent is
    # created, as ``mkdir -p`` would.)
    bad_dirs = ["{file}", "{dir}/" + LONG]
    dir_commands = [
        ("server", "export"),
        ("server", "health-authority", "list"),
        ("server", "signing-key", "rotate"),
        ("server", "admin", "realms"),
        ("server", "admin", "rotate-key"),
        ("server", "admin", "retire-keys"),
        ("server", "admin", "purge"),
        ("server", "admin", "maintenance", "on"),
        ("server", "admin", "api-key", "--name", "app", "--realm", "r"),
        ("server", "federation", "upload"),
        ("server", "federation", "download"),
        ("agent", "status"),
        ("agent", "sync"),
        ("agent", "export-data"),
        ("agent", "analytics", "on"),
        ("agent", "report", "12345678"),
    ]
    for command in dir_commands:
        for bad in bad_dirs:
            yield Case((*command, "--data-dir", bad))
    for bad in bad_dirs:
        yield Case(
            (
                "server",
                "init",
                "--data-dir",
                bad,
                "--realm",
                "r",
                "--username",
                "admin",
                "--password-stdin",
            ),
            stdin="a-long-enough-password\n",
        )
        yield Case(("agent", "wipe", "--yes", "--data-dir", bad))
    # A data directory given by the environment.
    for bad in bad_dirs:
        yield Case(("server", "export"), env={"PHE_TRACE_DATA_DIR": bad})
        yield Case(("server", "admin", "realms"), env={"PHE_TRACE_DATA_DIR": bad})
    yield Case(
        ("server", "export", "--data-dir", "{dir}/d"), env={"PHE_TRACE_EXPORT_DIR": "{file}"}
    )
    # Databases that cannot be reached or parsed, for every role that has one.
    for url in [
        "postgresql://nobody@127.0.0.1:1/none",
        "not a url",
        "mysql://x@y/z",
        "sqlite:///{missing}/below/db.sqlite3",
    ]:
        yield Case(
            ("server", "export", "--data-dir", "{dir}/d"), env={"PHE_TRACE_DATABASE_URL": url}
        )
        yield Case(
            ("server", "admin", "realms", "--data-dir", "{dir}/d"),
            env={"PHE_TRACE_DATABASE_URL": url},
        )
        yield Case(
            ("server", "admin", "realms", "--data-dir", "{dir}/d"),
            env={"PHE_TRACE_VERIFICATION_DATABASE_URL": url},
        )
        yield Case(
            ("aggregator", "collect", "--day", "1"),
            env={**_AGG, "PHE_TRACE_AGGREGATOR_DATABASE_URL": url},
        )
        yield Case(
            ("gateway", "batch", "--data-dir", "{dir}/g"),
            env={"PHE_TRACE_GATEWAY_DATABASE_URL": url},
        )
    # Settings that do not parse, each given to a command that reads it.
    for name, value in [
        ("PHE_TRACE_ALLOWED_HEALTH_AUTHORITY_IDS", "notjson"),
        ("PHE_TRACE_REVISION_TOKEN_KEYS", "changeme"),
        ("PHE_TRACE_EXPORT_MIN_RECORDS", "-1"),
        ("PHE_TRACE_EXPORT_MIN_RECORDS", "many"),
        ("PHE_TRACE_EXPORT_S3_BUCKET", "a"),
    ]:
        yield Case(("server", "export", "--data-dir", "{dir}/d"), env={name: value})
    for name, value in [
        ("PHE_TRACE_VERIFICATION_SECRET", "short"),
        ("PHE_TRACE_VERIFICATION_SHORT_CODE_MINUTES", "x"),
    ]:
        yield Case(("server", "admin", "realms", "--data-dir", "{dir}/d"), env={name: value})
    for name, value in [
        ("PHE_TRACE_AGGREGATOR_EPSILON", "abc"),
        ("PHE_TRACE_AGGREGATOR_ROLE", "boss"),
        ("PHE_TRACE_AGGREGATOR_PRIVATE_KEY", "zz"),
        ("PHE_TRACE_AGGREGATOR_MIN_BATCH_SIZE", "-3"),
    ]:
        yield Case(("aggregator", "collect", "--day", "1"), env={**_AGG, name: value})
    yield Case(("aggregator", "collect", "--day", "1"))  # no settings at all
    gateway = {
        "PHE_TRACE_GATEWAY_DATABASE_URL": "sqlite:///{dir}/gw.sqlite3",
        "PHE_TRACE_GATEWAY_TRUST_ANCHOR": "{pem}",
    }
    for name, value in [
        ("PHE_TRACE_GATEWAY_DOWNLOAD_DAYS", "two"),
        ("PHE_TRACE_GATEWAY_DOWNLOAD_DAYS", "9"),
        ("PHE_TRACE_GATEWAY_MAX_UPLOAD_KEYS", "0"),
        ("PHE_TRACE_GATEWAY_CALLBACK_ALLOW_PRIVATE", "perhaps"),
    ]:
        yield Case(("gateway", "batch"), env={**gateway, name: value})
    yield Case(("aggregator", "collect", "--day", "-1"), env=_AGG)
    yield Case(("aggregator", "collect", "--day", "x"), env=_AGG)
    yield Case(("aggregator", "collect", "--day", "2932897"), env=_AGG)  # after 9999-12-31
    for name, value in [
        ("PHE_TRACE_AGENT_SERVER_URL", "ht!tp://bad url"),
        ("PHE_TRACE_AGENT_SERVER_URL", "ftp://example.org"),
        ("PHE_TRACE_AGENT_RETENTION_DAYS", "-4"),
        ("PHE_TRACE_AGENT_RETENTION_DAYS", "fourteen"),
        ("PHE_TRACE_AGENT_EXPORT_PUBLIC_KEY", "{missing}/key.pem"),
        ("PHE_TRACE_AGENT_EXPORT_PUBLIC_KEY", "{binary}"),
    ]:
        yield Case(("agent", "status", "--data-dir", "{dir}/a"), env={name: value})
        yield Case(("agent", "sync", "--data-dir", "{dir}/a"), env={name: value})
    # Config files that are not config files.
    for config in ["{binary}", "{dir}", "{missing}/agent.env"]:
        yield Case(("agent", "status", "--config", config, "--data-dir", "{dir}/a"))
        yield Case(("agent", "sync", "--config", config, "--data-dir", "{dir}/a"))
    # Times that are not times.
    for now in ["1e30", "nan", "inf", "-inf", "-5", "", "2026-13-45", "9" * 400]:
        yield Case(("server", "export", "--data-dir", "{dir}/d", "--now", now))
    # Output paths that cannot be written.
    for out in ["{missing}/below/out.json", "{dir}", "{dir}/" + LONG]:
        yield Case(("agent", "export-data", "--data-dir", "{dir}/a", "-o", out))
    claims = ("--issuer", "i", "--audience", "a", "--kid", "k")
    for server, key, extra in (
        ("http://127.0.0.1:1", "{binary}", ()),
        ("not a url", "{missing}/k.pem", ()),
        ("http://127.0.0.1:1", "{pem}", ("--record-published", "{dir}")),
    ):
        yield Case(("conformance", "--server", server, "--ha-key", key, *claims, *extra))
    # Health-authority and federation arguments.
    add_authority = ("server", "health-authority", "add", "--issuer", "i", "--audience", "a")
    for source in (
        ("--public-key", "{binary}"),
        ("--public-key", "{missing}/k.pem"),
        ("--jwks-url", "not a url"),
    ):
        yield Case((*add_authority, *source, "--data-dir", "{dir}/d"))
    yield Case(("server", "federation", "import-exports", "--data-dir", "{dir}/d"))
    yield Case(
        ("server", "federation", "sync", "--data-dir", "{dir}/d"),
        env={"PHE_TRACE_FEDERATION_GATEWAY_URL": "not a url"},
    )
    yield Case(("gateway", "member", "add", "{binary}", "--data-dir", "{dir}/g"))
    yield Case(("gateway", "member", "add", "{missing}/cert.pem", "--data-dir", "{dir}/g"))
    yield Case(("gateway", "operator", "sign", "{binary}"))
    yield Case(("gateway", "batch", "--data-dir", "{file}"))
    create = ("server", "admin", "create", "--username", "bob", "--password-stdin")
    good_password = "a-long-enough-password\n"
    for realm, data_dir, password in (
        ("has space", "{dir}/d", good_password),
        ("r", "{dir}/d", "short\n"),
        ("r", "{file}", good_password),
    ):
        yield Case((*create, "--realm", realm, "--data-dir", data_dir), stdin=password)
    yield Case(
        ("agent", "check-radio", "--adapter", "hci99"),
        env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path={missing}/bus"},
    )
    yield Case(("aggregator", "keygen", "surplus"))
    for url in ["not a url", "ftp://example.org/x"]:
        yield Case(
            ("agent", "region", "add", "b", "--url", url, "--key", "{pem}", "--data-dir", "{dir}/a")
        )
    yield Case(
        (
            "agent",
            "region",
            "add",
            "b",
            "--url",
            "https://b.example/v1/exports/",
            "--key",
            "{binary}",
            "--data-dir",
            "{dir}/a",
        )
    )
    yield Case(
        (
            "agent",
            "region",
            "add",
            "b",
            "--url",
            "https://b.example/v1/exports/",
            "--key",
            "{missing}/k.pem",
            "--data-dir",
            "{dir}/a",
        )
    )
    yield Case(("agent", "region", "remove", "nowhere", "--data-dir", "{dir}/a"))
    yield Case(("agent", "region", "list", "--config", "{binary}", "--data-dir", "{dir}/a"))
    yield Case(("agent", "analytics", "sideways", "--data-dir", "{dir}/a"))
    yield Case(("agent", "report", "", "--data-dir", "{dir}/a"))


_AGG = {
    "PHE_TRACE_AGGREGATOR_ROLE": "leader",
    "PHE_TRACE_AGGREGATOR_PRIVATE_KEY": "11" * 32,
    "PHE_TRACE_AGGREGATOR_VERIFY_KEY": "22" * 16,
    "PHE_TRACE_AGGREGATOR_PEER_TOKEN": "a-peer-token-of-enough-length",
    "PHE_TRACE_AGGREGATOR_HELPER_URL": "http://127.0.0.1:1",
    "PHE_TRACE_AGGREGATOR_INGEST_URL": "http://127.0.0.1:1",
}

#: Long-running commands: bad values must stop them before they serve.
PROCESS_CASES = [
    ("server", "run", "--port", "99999", "--data-dir", "{dir}/d"),
    ("server", "run", "--port", "-1", "--data-dir", "{dir}/d"),
    ("server", "run", "--workers", "2", "--data-dir", "{dir}/d"),
    ("server", "run", "--role", "everything", "--data-dir", "{dir}/d"),
    ("server", "run", "--host", "no.such.host.invalid", "--data-dir", "{dir}/d"),
    ("server", "run", "--data-dir", "{file}"),
    ("server", "run", "--data-dir", "{dir}/" + LONG),
    ("aggregator", "run", "--port", "99999"),
    ("gateway", "run", "--port", "99999", "--data-dir", "{dir}/g"),
    ("gateway", "run", "--data-dir", "{file}"),
    ("agent", "run", "--radio", "carrier-pigeon", "--data-dir", "{dir}/a"),
    ("agent", "run", "--radio", "bumble", "--hci", "nonsense:1", "--data-dir", "{dir}/a"),
    ("agent", "run", "--sync-every-hours", "-1", "--data-dir", "{dir}/a"),
    ("agent", "run", "--data-dir", "{file}"),
    ("agent", "room", "--agents", "0"),
    ("agent", "room", "--port", "99999"),
    ("demo", "--people", "3"),
    ("demo", "--days", "0"),
    ("demo", "--out", "{dir}/" + LONG),
    ("demo", "--out", "{file}"),
    ("demo", "--radio", "carrier-pigeon"),
]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "a-file").write_text("not a directory\n")
    (tmp_path / "binary").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "scratch").mkdir()
    pem = tmp_path / "ha.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "file": str(tmp_path / "a-file"),
        "dir": str(tmp_path / "scratch"),
        "missing": str(tmp_path / "missing"),
        "binary": str(tmp_path / "binary"),
        "pem": str(pem),
        "long": LONG,
    }


def _fill(text: str, places: dict[str, str]) -> str:
    for name, value in places.items():
        text = text.replace("{" + name + "}", value)
    return text


def _assert_one_line(code: int, stderr: str, what: str) -> None:
    assert "Traceback" not in stderr, f"{what}:\n{stderr}"
    assert code != 0, f"{what} exited 0:\n{stderr}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{what}: {len(lines)} lines:\n{stderr}"
    assert lines[0].startswith("phe-trace"), f"{what}: {lines[0]}"


CASES = list(_cases())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_non_zero(
    case: Case,
    places: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CLI-1: a bad argument, setting or file is one stderr line and a non-zero exit."""
    for name in list(os.environ):
        if name.startswith("PHE_TRACE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for name, value in case.env.items():
        monkeypatch.setenv(name, _fill(value, places))
    monkeypatch.setattr(sys, "stdin", _Stdin(case.stdin))
    argv = [_fill(a, places) for a in case.argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # pragma: no cover - main never exits by itself
        code = int(exc.code or 0)
    except BaseException as exc:
        pytest.fail(f"{case.name}: {type(exc).__name__} escaped main(): {exc}")
    _assert_one_line(code, capsys.readouterr().err, case.name)


class _Stdin:
    def __init__(self, text: str) -> None:
        self._lines = text.splitlines(keepends=True)

    def readline(self) -> str:
        return self._lines.pop(0) if self._lines else ""

    def read(self) -> str:
        text, self._lines = "".join(self._lines), []
        return text

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("argv", PROCESS_CASES, ids=[" ".join(a)[:80] for a in PROCESS_CASES])
def test_long_running_commands_refuse_bad_input_at_once(
    argv: tuple[str, ...], places: dict[str, str], tmp_path: Path
) -> None:
    """CLI-1: a serving command given a bad value stops at once, one line, non-zero."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    env["HOME"] = str(tmp_path / "home")
    if argv[0] == "aggregator":
        env.update(_AGG)
    exe = Path(sys.executable).parent / "phe-trace"
    try:
        done = subprocess.run(
            [str(exe), *(_fill(a, places) for a in argv)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(argv)} kept running instead of refusing")
    _assert_one_line(done.returncode, done.stderr, " ".join(argv))


def test_the_table_covers_every_subcommand() -> None:
    """CLI-1: each subcommand of each role appears in the bad-input table."""
    from phe_trace.cli import _ROLES, _load_role

    def subcommands(command: object) -> dict[str, object]:
        return dict(getattr(command, "commands", {}) or {})

    covered = {tuple(c.argv[:3]) for c in CASES} | {tuple(a[:3]) for a in PROCESS_CASES}
    covered_text = {" ".join(parts) for parts in covered}
    missing = []
    for role in _ROLES:
        command = _load_role(role)
        paths = [[role]]
        if subcommands(command):
            paths = []
            for name, sub in subcommands(command).items():
                if subcommands(sub):
                    paths += [[role, name, leaf] for leaf in subcommands(sub)]
                else:
                    paths.append([role, name])
        for path in paths:
            text = " ".join(path)
            if not any(c.startswith(text) for c in covered_text):
                missing.append(text)
    assert not missing, f"subcommands without a bad-input case: {missing}"
