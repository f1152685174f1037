"""The package a stranger installs: ``python -m build`` makes an sdist and a wheel (the wheel
built from the sdist, so the sdist is proven complete), and the wheel, installed with its base
dependencies alone into a fresh virtualenv, imports, ships its data files and serves a router.

One build and one install (from the package index: ~20 s, most of it the network) serve the
whole module. The smoke scripts that run in the fresh virtualenv are smoke_app.py and
smoke_check.py beside this file; they import nothing from the checkout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import TIME_SCALE
from tests.support.ci import require_module

import wskit

#: a build, a virtualenv and an install from the index before the first test: more than the
#: suite's 60 s default on a slow network
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SOURCE = ROOT / "src" / "wskit"
#: the extras users are offered (README's table); development sets are dependency groups
USER_EXTRAS = {"msgspec", "fast", "redis", "jwt", "metrics", "otel", "client", "asgi", "all"}
#: what may stand at the top of the sdist besides src/ (hatchling adds .gitignore and PKG-INFO)
SDIST_TOP = {"src", "LICENSE", "README.md", "pyproject.toml", "PKG-INFO", ".gitignore"}
#: how long the smoke server may take to start, and to stop after SIGTERM
PATIENCE_S = 20.0 * TIME_SCALE
#: the smoke server: its ws:// URL and its process
Served = tuple[str, subprocess.Popen[bytes]]


@dataclass(frozen=True)
class Installed:
    """The built distributions and the fresh virtualenv that holds the wheel."""

    sdist: Path
    wheel: Path
    venv: Path
    #: an empty folder the smoke scripts run in (nothing importable in it)
    workdir: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _run(args: list[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a command to completion; its output, or a failure that shows it."""
    done = subprocess.run(
        [str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _build_env() -> dict[str, str]:
    """This environment without what would point a build or an install at the checkout's venv."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}


def _bare_env(**extra: str) -> dict[str, str]:
    """What a stranger's shell has, and no more: the smoke scripts see no settings of ours."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    return env | extra


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    require_module("build", reason="tests/distribution runs `python -m build` (make test installs the test group)")
    out = tmp_path_factory.mktemp("dist")
    # isolated, as a stranger's build is: the backend comes from build-system.requires
    _run([sys.executable, "-m", "build", "--outdir", out, ROOT], env=_build_env())
    (sdist,) = out.glob("wskit-*.tar.gz")
    (wheel,) = out.glob("wskit-*.whl")
    venv = tmp_path_factory.mktemp("venv")
    # no pip of its own (ensurepip alone takes seconds): this pip installs into it
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    _run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", wheel],
        env=_build_env(),
    )
    return Installed(sdist, wheel, venv, tmp_path_factory.mktemp("work"))


def _source_files() -> set[str]:
    """The package's files in the checkout as the wheel names them, ``wskit/...`` (caches left out)."""
    return {
        path.relative_to(SOURCE.parent).as_posix()
        for path in SOURCE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}
    }


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


def _check(installed: Installed, *args: str) -> Any:
    """Run smoke_check.py in the fresh virtualenv; its JSON answer."""
    out = _run([installed.python, HERE / "smoke_check.py", *args], env=_bare_env(), cwd=installed.workdir)
    return json.loads(out)


def test_sdist_holds_the_package_licence_and_readme_and_nothing_else(installed: Installed) -> None:
    """The sdist has src/wskit with its data files, LICENSE, README and pyproject; no tests, bench, caches or venvs."""
    with tarfile.open(installed.sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    files = set(names)
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= files
    assert {name.split("/", 1)[0] for name in files} <= SDIST_TOP
    assert {name for name in files if name.startswith("src/")} == {f"src/{name}" for name in _source_files()}
    assert not [name for name in files if "__pycache__" in name or name.endswith((".pyc", ".pyo"))]


def test_wheel_ships_every_file_of_the_package(installed: Installed) -> None:
    """Every file under src/wskit (modules, py.typed, static/wskit.js and .d.ts) is in the wheel, nothing else."""
    with zipfile.ZipFile(installed.wheel) as archive:
        names = {name for name in archive.namelist() if ".dist-info/" not in name}
    expected = _source_files()
    assert {"wskit/py.typed", "wskit/static/wskit.js", "wskit/static/wskit.d.ts"} <= expected
    assert names == expected


def test_wheel_metadata_names_the_licence_urls_and_user_extras_only(installed: Installed) -> None:
    """MIT by SPDX expression with its file, the project URLs, Python >= 3.11, and only the user-facing extras."""
    meta = _metadata(installed.wheel)
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.11"
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Issues", "Source"}
    assert all(url.startswith("https://") for url in urls.values())
    assert set(meta.get_all("Provides-Extra") or []) == USER_EXTRAS
    assert "Typing :: Typed" in (meta.get_all("Classifier") or [])


def test_wheel_declares_the_wskit_console_script(installed: Installed) -> None:
    """The wheel's entry points give a `wskit` command running wskit.cli:main."""
    with zipfile.ZipFile(installed.wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = archive.read(name).decode()
    assert re.search(r"^\[console_scripts\]\s*\nwskit = wskit\.cli:main$", text, re.MULTILINE), text


def test_installed_package_is_the_wheel_with_its_data_files(installed: Installed) -> None:
    """In the fresh venv, wskit imports from that venv, at the checkout's version, with py.typed and static/wskit.js."""
    found = _check(installed, "installed")
    assert Path(found["file"]).is_relative_to(installed.venv)
    assert found["version"] == wskit.__version__
    assert installed.wheel.name.startswith(f"wskit-{wskit.__version__}-")
    assert found["py_typed"] is True
    assert {"wskit.js", "wskit.d.ts"} <= set(found["static"])


def test_base_install_brings_no_optional_dependency(installed: Installed) -> None:
    """`pip install wskit` installs none of the extras' packages: what the smoke tests show works without them."""
    assert _check(installed, "installed")["optional_present"] == []


@pytest.fixture
def served(installed: Installed) -> Iterator[Served]:
    """smoke_app.py served by serve() from the fresh venv on a free loopback port: its URL and process."""
    log_path = installed.workdir / f"server-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(installed.python), str(HERE / "smoke_app.py")],
            env=_bare_env(HOST="127.0.0.1", PORT="0"),
            cwd=installed.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield _wait_listening(process, log_path), process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path) -> str:
    """The URL in the server's 'wskit listening on URL (transport)' line, once it is logged."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = re.search(r"wskit listening on (ws://127\.0\.0\.1:\d+/) \((\w+)\)", text)
        if match:
            # the base install has no picows: serve() hosts on aiohttp
            assert match.group(2) == "aiohttp", text
            return match.group(1)
        if process.poll() is not None:
            pytest.fail(f"the smoke server exited {process.returncode} before listening:\n{text}")
        time.sleep(0.05)
    pytest.fail(f"the smoke server did not listen within {PATIENCE_S} s:\n{log_path.read_text(errors='replace')}")


def test_installed_package_answers_an_rpc_over_a_raw_socket(installed: Installed, served: Served) -> None:
    """A raw aiohttp WebSocket gets the RPC's response, and INVALID_ARGUMENT for a payload the model refuses."""
    url, _ = served
    good, bad = _check(installed, "raw", url)
    assert good == {"type": "GREETING", "meta": {"correlationId": "good"}, "payload": {"text": "Hello, Ada!"}}
    assert bad["type"] == "RPC_ERROR"
    assert bad["meta"]["correlationId"] == "bad"
    assert bad["payload"]["code"] == "INVALID_ARGUMENT"


def test_installed_python_client_needs_no_extra(installed: Installed, served: Served) -> None:
    """wskit.client, from the base install alone, makes a typed request to the served router."""
    url, _ = served
    assert _check(installed, "client", url) == {"type": "GREETING", "payload": {"text": "Hello, Ada!"}}


def test_installed_server_stops_cleanly_on_sigterm(served: Served) -> None:
    """serve() from the wheel exits 0 after SIGTERM, as a process supervisor expects."""
    _, process = served
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=PATIENCE_S) == 0


@pytest.mark.parametrize("how", ["console script", "python -m wskit"])
def test_installed_cli_prints_the_version(installed: Installed, how: str) -> None:
    """`wskit --version` and `python -m wskit --version` print the package's version."""
    module = "cli" if how == "console script" else "__main__"
    if not ((SOURCE / f"{module}.py").is_file() or (SOURCE / module / "__init__.py").is_file()):
        pytest.skip(f"src/wskit/{module}.py is not written yet (issue 18, the CLI)")
    command = [installed.venv / "bin" / "wskit"] if how == "console script" else [installed.python, "-m", "wskit"]
    out = _run([*command, "--version"], env=_bare_env(), cwd=installed.workdir)
    assert wskit.__version__ in out
