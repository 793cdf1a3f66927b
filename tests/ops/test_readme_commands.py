"""The READMEs' commands, run as written, in a fresh virtual environment made from the wheel.

A fenced ``sh`` block right after ``<!-- tested: NAME -->`` in ``device/README.md`` or
``server/README.md`` is part of the walkthrough NAME; the test runs NAME's blocks in the
order of the document, as a person would type them in a shell:

* ``<!-- tested: NAME install -->`` blocks say how to install. The test builds the wheel
  (``python -m build --wheel``), makes a new virtual environment and installs the wheel
  with exactly the extras the block's ``pip install '.[…]'`` names, nothing else.
* A line starting ``phe-trace server run``, ``phe-trace agent room`` or ``phe-trace agent
  run`` (the commands the READMEs give a terminal of their own) is started in the
  background and waited for until it answers; every other run of lines is one ``bash``
  script (so a here-document or ``$(…)`` works as typed) that must exit with status 0.
* Only ports, the data directory of the server quick start and the code a case worker
  reads off the portal are substituted; the portal step itself ("sign in, press Issue
  code") is done by the test as a browser on the same machine would.

Slow (the wheel, two environments, a minute and a half of agents meeting): one of the
deployment suites ``.ci/run`` runs after ``make test`` (``PHE_TRACE_DEPLOYMENT_TESTS=1``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from phe_trace.serving import free_port
from tests.verification.conftest import issue_code, sign_in

from .gates import deployment

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long enough password"
#: The placeholder code in the device walkthrough's report command.
PLACEHOLDER_CODE = "12345678"
_MARKER = re.compile(
    r"<!-- tested: ([a-z0-9-]+)(?: (install|terminals))? -->\n```sh\n(.*?)```", re.DOTALL
)
_LONG_RUNNING = re.compile(r"^(?:[A-Z_]+=\S+ )*phe-trace (?:server run|agent room|agent run)\b")
_EXTRAS = re.compile(r"pip install '\.\[([a-z,]+)\]'")

pytestmark = deployment


@dataclass
class Block:
    kind: str  # "" (commands), "install" or "terminals" (each line its own terminal)
    text: str

    @property
    def install(self) -> bool:
        return self.kind == "install"


def blocks(readme: Path, name: str) -> list[Block]:
    """The walkthrough ``name``'s command blocks, in document order."""
    found = [
        Block(m.group(2) or "", m.group(3))
        for m in _MARKER.finditer(readme.read_text())
        if m.group(1) == name
    ]
    assert found, f"{readme} has no block marked <!-- tested: {name} -->"
    for block in found:
        if block.kind == "terminals":  # what the README calls a terminal of its own is one
            assert all(long_running for long_running, _ in steps(block.text)), block.text
    return found


def extras_of(install: Block) -> str:
    """The extras the install block's ``pip install '.[…]'`` names."""
    match = _EXTRAS.search(install.text)
    assert match, f"no pip install '.[extras]' in {install.text!r}"
    return match.group(1)


def steps(text: str) -> Iterator[tuple[bool, str]]:
    """(long-running?, command text): each long-running line alone, the rest in runs."""
    run: list[str] = []
    for line in text.splitlines():
        if _LONG_RUNNING.match(line.strip()):
            if run:
                yield False, "\n".join(run)
                run = []
            yield True, line.strip()
        else:
            run.append(line)
    if any(line.strip() and not line.lstrip().startswith("#") for line in run):
        yield False, "\n".join(run)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build --wheel`` of this source tree (a clean copy of it: no earlier
    ``build/`` directory can add stale files, and the tree itself is left as it was)."""
    out, tree = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("tree") / "phe-trace"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
        ".hypothesis", "test-artifacts", "demo-report",
    )  # fmt: skip
    shutil.copytree(ROOT, tree, ignore=skip)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(tree)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [built] = out.glob("phe_trace-*.whl")
    print(f"wheel built in {time.monotonic() - started:.1f} s: {built.name}")
    return built


def clean_env() -> dict[str, str]:
    """The environment without this test run's PHE_TRACE_* settings and PYTHONPATH (which
    would make pip and the commands see the source tree instead of the installed wheel)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHE_TRACE_", "PIP_"))}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def make_venv(where: Path, wheel: Path, extras: str) -> Path:
    """A new virtual environment with the wheel and ``extras`` only; its ``bin``."""
    started = time.monotonic()
    env = clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300, env=env)
    python = str(where / "bin" / "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, f"{wheel}[{extras}]"],
        capture_output=True, text=True, timeout=900, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"venv with [{extras}] installed in {time.monotonic() - started:.1f} s")
    return where / "bin"


@dataclass
class Shell:
    """The person's terminals: one working directory, the venv activated."""

    cwd: Path
    bin: Path
    substitutions: dict[str, str]
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = clean_env()
        env["VIRTUAL_ENV"] = str(self.bin.parent)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def substitute(self, text: str) -> str:
        for old, new in self.substitutions.items():
            text = text.replace(old, new)
        return text

    def run(self, script: str) -> str:
        """A run of lines as one bash script; the password is typed when asked (twice)."""
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", self.substitute(script)],
            cwd=self.cwd, env=self.env, input=f"{PASSWORD}\n{PASSWORD}\n",
            capture_output=True, text=True, timeout=600, check=False,
            start_new_session=True,  # no terminal: the password prompt reads stdin
        )  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{script!r} failed ({done.returncode}):\n{output}"
        assert "Traceback" not in output, output
        self.outputs.append(output)
        return output

    def start(self, line: str, timeout: float = 90) -> None:
        """A command that keeps running (a terminal of its own), waited for until ready."""
        line = self.substitute(line)
        log = self.cwd / f"terminal-{len(self.background)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", line], cwd=self.cwd, env=self.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        self.background.append(process)
        deadline = time.monotonic() + timeout
        while not self._ready(line, log):
            assert process.poll() is None, f"{line!r} exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{line!r} not ready:\n{log.read_text()}"
            time.sleep(0.25)

    def _ready(self, line: str, log: Path) -> bool:
        if "server run" in line:
            port = re.search(r"--port (\d+)", line)
            url = f"http://127.0.0.1:{port.group(1) if port else 8080}/healthz"
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        if "agent room" in line:
            return "radio room open" in log.read_text(errors="replace")
        data_dir = re.search(r"--data-dir (\S+)", line)
        assert data_dir, line
        return (self.cwd / data_dir.group(1) / "store.key").exists()

    def stop(self) -> None:
        for process in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.background:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)


class Browser(httpx.Client):
    """A browser on the same machine: it keeps and sends the portal's Secure cookies over
    http://127.0.0.1 (a secure context for browsers), which httpx alone would not."""

    def send(self, *args: object, **kwargs: object) -> httpx.Response:  # type: ignore[override]
        response = super().send(*args, **kwargs)  # type: ignore[arg-type]
        for cookie in self.cookies.jar:
            cookie.secure = False
        return response


def _issue_code_in_the_portal(url: str) -> str:
    """Sign in as the administrator made by `server init`, press Issue code."""
    with Browser(base_url=url, timeout=30) as browser:
        signed_in = sign_in(browser, "admin", PASSWORD)
        assert signed_in.status_code == 303, signed_in.text
        return issue_code(browser).code


def test_device_walkthrough_as_written(tmp_path: Path, wheel: Path) -> None:
    """(SPEC OPS-9) device/README.md "Try it on one laptop": a local health authority, a
    radio room and two agents, a code issued in the portal, alice reports, the export is
    written, bob checks and his risk level is high; alice, who reported, is not."""
    readme = blocks(ROOT / "device" / "README.md", "device-walkthrough")
    [install] = [b for b in readme if b.install]
    assert extras_of(install) == "device,server"
    work = tmp_path / "clone"
    work.mkdir()
    shutil.copytree(ROOT / "device", work / "device")  # the source tree's files it names
    bin_dir = make_venv(work / "try-it", wheel, extras_of(install))
    http_port, room_port = free_port(), free_port(count=2)
    shell = Shell(work, bin_dir, {"8080": str(http_port), "9101": str(room_port + 1),
                                  "9100": str(room_port)})  # fmt: skip
    started = time.monotonic()
    try:
        for block in readme:
            if block.install:
                continue
            if PLACEHOLDER_CODE in block.text:
                code = _issue_code_in_the_portal(f"http://127.0.0.1:{http_port}")
                shell.substitutions[PLACEHOLDER_CODE] = code
            for long_running, text in steps(block.text):
                if long_running:
                    shell.start(text)
                else:
                    shell.run(text)
        met = next(o for o in shell.outputs if "sighting windows:" in o)
        windows = int(re.search(r"sighting windows:\s+(\d+)", met).group(1))  # type: ignore[union-attr]
        assert windows > 0, met
        assert any(re.search(r"published \d+ key", o) for o in shell.outputs)
        final = shell.outputs[-1]
        assert re.search(r"risk level:\s+high", final), final
        alice = shell.run("phe-trace agent status --config laptop.env --data-dir alice")
        assert not re.search(r"risk level:\s+high", alice), alice
        assert not re.search(r"reported positive:\s+no", alice), alice
    finally:
        shell.stop()
    print(f"device walkthrough ran in {time.monotonic() - started:.1f} s")


def test_server_quick_start_as_written(tmp_path: Path, wheel: Path) -> None:
    """(SPEC OPS-9) server/README.md "Try it": init asks for the password, run prints
    where everything answers, and the portal, the device API and the exports answer."""
    readme = blocks(ROOT / "server" / "README.md", "server-quick-start")
    [install] = [b for b in readme if b.install]
    assert extras_of(install) == "server,postgres"
    work = tmp_path / "clone"
    work.mkdir()
    bin_dir = make_venv(work / ".venv", wheel, extras_of(install))
    port = free_port()
    data = tmp_path / "var-lib-phe-trace"
    shell = Shell(work, bin_dir, {"/var/lib/phe-trace": str(data), "8080": str(port)})
    try:
        for block in readme:
            if not block.install:
                for long_running, text in steps(block.text):
                    shell.start(text) if long_running else shell.run(text)
        assert "realm default, administrator admin" in shell.outputs[0]
        [log] = work.glob("terminal-*.log")
        startup = log.read_text()
        base = f"http://127.0.0.1:{port}"
        assert f"portal {base}/portal/" in startup and f"exports {base}/v1/exports/" in startup
        assert "no realm yet" not in startup
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/portal/login").status_code == 200
            assert client.get("/.well-known/jwks.json").json()["keys"]
            refused = client.post("/api/verify", json={"code": "12345678"})
            assert refused.status_code == 401  # no API key: the device API answers
            assert client.get("/v1/exports/ZZ/index.txt").status_code == 200
        assert _issue_code_in_the_portal(base).isdigit()
    finally:
        shell.stop()


def test_device_install_brings_every_agent_command_and_no_server(
    tmp_path: Path, wheel: Path
) -> None:
    """(SPEC OPS-1, OPS-9) device/README.md "Install": the wheel with the extras it names
    (``device``) alone runs the agent's commands, a bumble agent included, and a server
    command says in one line which extra it needs."""
    [install] = blocks(ROOT / "device" / "README.md", "device-install")
    assert extras_of(install) == "device"
    bin_dir = make_venv(tmp_path / "venv", wheel, extras_of(install))
    shell = Shell(tmp_path, bin_dir, {})
    try:
        shell.run("phe-trace --help && phe-trace agent --help && phe-trace agent status --help")
        missing = subprocess.run(
            ["bash", "-c", "phe-trace agent status --data-dir nowhere"],
            cwd=tmp_path, env=shell.env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert missing.returncode != 0 and "Traceback" not in missing.stderr
        assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
        assert not (tmp_path / "nowhere").exists()
        server = subprocess.run(
            ["bash", "-c", "phe-trace server run --data-dir ha"],
            cwd=tmp_path, env=shell.env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert server.returncode != 0
        [line] = server.stderr.strip().splitlines()
        assert "install phe-trace[server]" in line, line
        shell.start("phe-trace agent run --radio bumble --data-dir alone")
    finally:
        shell.stop()
    assert [p.returncode for p in shell.background] == [0]  # SIGTERM: a clean stop
    exported = shell.run("phe-trace agent export-data --data-dir alone")
    assert '"temporary_exposure_keys"' in exported
