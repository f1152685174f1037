"""``wskit run --reload``: a changed .py file restarts the server; stopping the reloader stops it.

The application is a module written to a temporary directory (the tests never touch the
repository's files). Which process answers is asked with the PID RPC; that the new process
runs the new code is asked with VERSION. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

from tests.cli.conftest import START_S, Running, wskit

APP_SOURCE = """
import os

from pydantic import BaseModel

from wskit import Context, Router, rpc


class Answer(BaseModel):
    pid: int
    version: int


Ask = rpc("VERSION", None, "VERSION_IS", Answer)
router = Router()


@router.rpc(Ask)
async def version(ctx: Context[None]) -> None:
    await ctx.reply({"pid": os.getpid(), "version": VERSION})


VERSION = 1
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write(path: Path, version: int, *, broken: bool = False) -> None:
    text = APP_SOURCE.replace("VERSION = 1", f"VERSION = {version}") + ("def (:\n" if broken else "")
    path.write_text(text)
    # a later modification time even on a file system that keeps whole seconds
    stamp = time.time() + version
    os.utime(path, (stamp, stamp))


def _answer(url: str) -> dict[str, int] | None:
    done = wskit("request", url, "VERSION", "--timeout", "2")
    return json.loads(done.stdout)["payload"] if done.returncode == 0 else None  # type: ignore[no-any-return]


def _wait_for_version(url: str, version: int) -> dict[str, int]:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        found = _answer(url)
        if found is not None and found["version"] == version:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no server answered version {version} within {START_S:g} s")


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_changed_file_restarts_the_server(tmp_path: Path) -> None:
    """Editing the module: the old process stops, a new one serves the new code on the same
    port; SIGTERM to the reloader stops the server too, exit 0."""
    _write(tmp_path / "live.py", 1)
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/"
    with Running("run", "live:router", "--reload", "--port", str(port), cwd=tmp_path) as reloader:
        reloader.wait_for(r"watching 1 \.py file")
        first = _wait_for_version(url, 1)
        _write(tmp_path / "live.py", 2)
        second = _wait_for_version(url, 2)
        assert second["pid"] != first["pid"]
        assert _gone(first["pid"])
        reloader.wait_for(r"live\.py changed: restarting")
        assert reloader.stop() == 0
        assert _gone(second["pid"]), "the server outlived its reloader"


def test_a_broken_edit_waits_for_the_fix(tmp_path: Path) -> None:
    """A syntax error: the server exits, the reloader says so and keeps watching; the fix
    starts a server again."""
    _write(tmp_path / "live.py", 1)
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/"
    with Running("run", "live:router", "--reload", "--port", str(port), cwd=tmp_path) as reloader:
        _wait_for_version(url, 1)
        _write(tmp_path / "live.py", 2, broken=True)
        reloader.wait_for(r"wskit run: error: cannot import live: invalid syntax \(live\.py, line \d+\)")
        reloader.wait_for(r"the server exited \(1\); waiting for a change")
        _write(tmp_path / "live.py", 3)
        _wait_for_version(url, 3)
        assert reloader.stop(signal.SIGINT) == 0


def test_the_reloader_finds_the_project_without_the_current_directory_on_sys_path(tmp_path: Path) -> None:
    """As a console script (``python -P``: no current directory on sys.path) the reloader still
    finds the module's directory to watch."""
    _write(tmp_path / "live.py", 1)
    with Running(
        "run", "live:router", "--reload", "--port", str(_free_port()), cwd=tmp_path, isolated=True
    ) as reloader:
        reloader.wait_for(rf"watching 1 \.py file\(s\) under {tmp_path.resolve()}$")
        assert reloader.stop() == 0


def test_a_killed_reloader_takes_its_server_along(tmp_path: Path) -> None:
    """A reloader killed outright (SIGKILL, no chance to clean up): its server stops by itself."""
    _write(tmp_path / "live.py", 1)
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/"
    with Running("run", "live:router", "--reload", "--port", str(port), cwd=tmp_path) as reloader:
        server = _wait_for_version(url, 1)
        reloader.stop(signal.SIGKILL)
        assert _gone(server["pid"]), "the server outlived its killed reloader"
