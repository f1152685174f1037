"""Helpers of the CLI tests: the real ``python -m wskit`` in subprocesses, servers on loopback.

:func:`wskit` runs one command to its end; :class:`Running` starts a long one (``wskit run``,
``wskit listen``) and reads its output as it comes, so a test waits for a line ("listening
on ...") instead of sleeping. Every wait is bounded and scaled by ``WSKIT_TIME_SCALE``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from tests.conftest import TIME_SCALE

#: the repository (the current directory of the commands, so ``tests.cli.app`` imports)
ROOT = Path(__file__).resolve().parents[2]
#: how long one command may take (start-up included)
COMMAND_S = 30.0 * TIME_SCALE
#: how long a server may take to start listening, or to stop
START_S = 15.0 * TIME_SCALE
#: the router these tests serve
APP = "tests.cli.app:router"

_LISTENING = re.compile(r"listening on (wss?://\S+?)/?(?:\s|$)")


def _env(env: Mapping[str, str] | None) -> dict[str, str]:
    # the variables a test sets, over a copy of ours without any wskit setting leaking in
    base = {k: v for k, v in os.environ.items() if k not in ("PORT", "MAX_PAYLOAD_BYTES", "WSKIT_TOKEN")}
    return {**base, **(env or {})}


def wskit(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = COMMAND_S,
    isolated: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m wskit ARGS`` to its end; its exit code and output (``isolated``: as
    :class:`Running`'s)."""
    return subprocess.run(
        [sys.executable, *(["-P"] if isolated else []), "-m", "wskit", *args],
        capture_output=True,
        text=True,
        env=_env(env),
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )


def one_error_line(done: subprocess.CompletedProcess[str], command: str) -> str:
    """The one line a failed command printed on stderr (asserting there is exactly one)."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {done.stderr!r}"
    assert "Traceback" not in done.stderr
    assert lines[0].startswith(f"wskit {command}: error: "), lines[0]
    return lines[0]


class Running:
    """A long-running ``python -m wskit`` command whose output lines are collected as they come
    (``isolated``: started with ``python -P``, without the current directory on sys.path, as a
    console script starts)."""

    def __init__(
        self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, isolated: bool = False
    ) -> None:
        # isolated: ``python -P``, no current directory on sys.path (as under a console script)
        self.proc = subprocess.Popen(
            [sys.executable, *(["-P"] if isolated else []), "-m", "wskit", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(env),
            cwd=cwd or ROOT,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, *, timeout: float = START_S, stream: str = "err") -> re.Match[str]:
        """The first line of stderr (or stdout) matching ``pattern``; fails after ``timeout``."""
        lines = self.err if stream == "err" else self.out
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in lines[seen:]:
                seen += 1
                found = compiled.search(line)
                if found is not None:
                    return found
            if self.proc.poll() is not None and seen >= len(lines):
                time.sleep(0.05)  # the readers may still be taking the last lines
                if seen >= len(lines):
                    break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} within {timeout:g} s; stderr: {self.err}, out: {self.out}")

    def url(self) -> str:
        """The ``ws://`` URL the server (or listener) said it listens on."""
        return self.wait_for(_LISTENING.pattern)[1] + "/"

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = START_S) -> int:
        """Send ``sig`` and wait for the exit code (killed when it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"did not stop within {timeout:g} s after signal {sig}") from None
        self._close()
        return code

    def wait(self, *, timeout: float = COMMAND_S) -> int:
        """Wait for the command to end by itself; its exit code."""
        code = self.proc.wait(timeout)
        self._close()
        return code

    def _close(self) -> None:
        for reader in self._readers:
            reader.join(START_S)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``wskit run tests.cli.app:router --port 0``, shared by a module's tests: its URL."""
    with Running("run", APP, "--port", "0") as running:
        yield running.url()
        assert running.stop() == 0
