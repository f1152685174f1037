"""SIGHUP (``systemctl reload``: a TLS reload) while ``serve(workers=2)`` starts.

The parent forwards SIGHUP to its workers, and each worker reloads on it; neither may die of
one that comes before its handler is in place. A server process (``tests.metrics.worker_app``:
two workers on a Redis of the test's own, ``WHOAMI`` answering the worker's pid) gets SIGHUP
every few milliseconds from the moment it forks its first worker until both workers have
answered: it must survive, serve on both, and stop cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.metrics.scraping import rpc_call
from tests.support.redis_server import free_port, redis_url_for_tests
from tests.tls.processes import ROOT, START_S
from websockets.asyncio.client import connect

pytestmark = pytest.mark.timeout(120)

#: seconds between two SIGHUPs of the storm
EVERY_S = 0.002


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from redis_url_for_tests()


class Storm(threading.Thread):
    """SIGHUP to ``pid`` every :data:`EVERY_S` from the moment it has a child process (a forked
    worker) until :meth:`stop`. Before that the interpreter starts and imports the app,
    when SIGHUP's default action ends any process that has not set a handler yet."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.sent = 0
        self._stopped = threading.Event()

    def run(self) -> None:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        while not self._stopped.is_set():
            try:
                if children.read_text().split():
                    break
            except OSError:  # the process is gone
                return
            time.sleep(0.0002)
        while not self._stopped.wait(EVERY_S):
            try:
                os.kill(self.pid, signal.SIGHUP)
            except ProcessLookupError:
                return
            self.sent += 1

    def stop(self) -> int:
        """Stop sending; how many were sent."""
        self._stopped.set()
        self.join(5)
        return self.sent


def _spawn(port: int, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    """The worker app with two workers on ``port``, its output to ``log``."""
    args = [sys.executable, "-m", "tests.metrics.worker_app", "--port", str(port), "--redis", redis_url]
    args += ["--namespace", f"hup{uuid.uuid4().hex[:8]}"]
    with log.open("wb") as out:
        return subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT)


def _children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


async def _whoami(port: int) -> int | None:
    """The pid of the worker a new connection lands on, or None while nothing answers."""
    try:
        async with asyncio.timeout(2), connect(f"ws://127.0.0.1:{port}/", open_timeout=2) as ws:
            return int((await rpc_call(ws, "WHOAMI", "?", "w"))["payload"]["text"])
    except (OSError, TimeoutError, ValueError):
        return None


async def test_sighup_during_the_start_of_workers_kills_nothing(redis_url: str, tmp_path: Path) -> None:
    """A storm of SIGHUPs from the first fork on: the parent and both workers live, both
    workers answer, further SIGHUPs are harmless, and SIGTERM then stops the server with exit 0."""
    port = free_port()
    log = tmp_path / "server.log"
    proc = _spawn(port, redis_url, log)
    storm = Storm(proc.pid)
    storm.start()
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 4 * START_S
        while len(workers) < 2:
            assert proc.poll() is None, f"the server exited {proc.returncode}:\n{log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, f"only {workers} answered:\n{log.read_text(errors='replace')}"
            pid = await _whoami(port)
            if pid is not None:
                workers.add(pid)
            else:
                await asyncio.sleep(0.02)
        sent = storm.stop()
        assert sent > 10, f"only {sent} SIGHUPs were sent while the workers started"
        assert _children(proc.pid) == workers
        for _ in range(5):
            os.kill(proc.pid, signal.SIGHUP)
        assert await _whoami(port) in workers
        assert proc.poll() is None and _children(proc.pid) == workers
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, START_S)
        assert code == 0, log.read_text(errors="replace")
    finally:
        storm.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
