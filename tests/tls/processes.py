"""Server processes the wss:// and deployment tests start, signal and read the logs of.

An :class:`Instance` runs ``python <args>`` with settings in its environment (JSON log lines,
``LOG_FORMAT=json``, into a file of the test's), counts as started once ``/readyz`` answers
200, and is stopped by SIGTERM as a supervisor stops it. :meth:`Instance.events` reads the
structured log lines back, so a test checks what the server says it did.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from tests.support.waiting import PATIENCE_S, eventually

__all__ = ["ROOT", "Instance", "http_get"]

ROOT = Path(__file__).resolve().parents[2]

#: how long a server process may take to become ready (a cold interpreter imports a lot)
START_S = 4 * PATIENCE_S


async def http_get(url: str, *, context: ssl.SSLContext | None = None, timeout: float = 5.0) -> tuple[int, str]:
    """One GET; its status and body. Raises ``aiohttp.ClientError``/``OSError`` when nothing answers."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url, ssl=context if context is not None else True) as response,
    ):
        return response.status, await response.text()


class Instance:
    """One server process: ``python <args>`` listening on ``port`` (https when ``context``).

    ``env`` adds to this process's environment; output (stdout and stderr) goes to ``log``.
    """

    def __init__(
        self,
        args: list[str],
        port: int,
        log: Path,
        *,
        env: dict[str, str] | None = None,
        context: ssl.SSLContext | None = None,
        name: str = "",
    ) -> None:
        self.args = args
        self.port = port
        self.log = log
        self.context = context
        self.name = name or f"port {port}"
        self.env = {"PYTHONPATH": str(ROOT), "LOG_FORMAT": "json", "HOST": "127.0.0.1", "PORT": str(port)}
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        #: exit codes of the runs that ended, in order
        self.exits: list[int] = []

    @property
    def base(self) -> str:
        return f"{'https' if self.context is not None else 'http'}://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self) -> None:
        """Start (again: the log file is appended to) and wait until ``/readyz`` answers 200."""
        assert not self.alive
        self._spawn()
        try:
            await eventually(self._ready, timeout=START_S, what=f"{self.name} answers /readyz 200")
        except BaseException:
            self.kill()
            raise

    def _spawn(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *self.args], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )

    async def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited {self.proc.returncode} before it was ready:\n{self.tail()}")
        try:
            status, _ = await http_get(self.base + "/readyz", context=self.context, timeout=1.0)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False
        return status == 200

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def terminate(self, timeout: float = START_S) -> int:
        """SIGTERM (a graceful shutdown) and wait for the exit; its code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self._wait(timeout)

    async def _wait(self, timeout: float) -> int:
        assert self.proc is not None
        code = await asyncio.to_thread(self.proc.wait, timeout)
        self.exits.append(code)
        return code

    def kill(self) -> None:
        """SIGKILL if it still runs (cleanup)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far (other lines skipped)."""
        found: list[dict[str, Any]] = []
        for line in self.log.read_text(errors="replace").splitlines() if self.log.exists() else []:
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue  # a line being written
        return found

    def events(self, name: str) -> list[dict[str, Any]]:
        """The structured log lines whose ``event`` is ``name``."""
        return [line for line in self.lines() if line.get("event") == name]

    def tail(self, count: int = 30) -> str:
        """The last ``count`` lines of output (for failure messages)."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-count:])
