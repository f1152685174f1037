"""Our own ``redis-server`` for tests: a free port, killable, restartable; never the machine's Redis.

Fault tests kill Redis and bring it back on the same port, which a shared Redis must never
be subjected to. Without ``redis-server`` on PATH, tests that only need *a* Redis fall back
to ``REDIS_URL`` (never flushed: each test works in its own namespace), and tests that need
their own server cannot run. Either way a Redis test that cannot run is skipped, except
under ``CI=true`` (any case) where it fails: a green CI run must have exercised Redis, and
``make test`` installs ``redis-server`` (the rule of :mod:`tests.support.ci`). Every Redis
fixture decides through :func:`no_redis`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from tests.support.ci import in_ci, unavailable

__all__ = ["REDIS_SERVER", "RedisServer", "free_port", "in_ci", "no_redis", "redis_or_skip", "redis_url_for_tests"]

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_redis(reason: str) -> NoReturn:
    """Skip the test for want of Redis; under CI, fail it instead (:func:`tests.support.ci.unavailable`)."""
    unavailable(f"{reason}; Redis is required under CI")


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1; ``persistent`` keeps data across restarts (AOF).

    ``directory`` holds its files (default: a new temporary directory, removed by :meth:`stop`).
    """

    def __init__(self, directory: Path | None = None, *, persistent: bool = False) -> None:
        if REDIS_SERVER is None:
            no_redis("redis-server is not on PATH")
        self.port = free_port()
        self.persistent = persistent
        self._own_dir = directory is None
        self.directory = directory if directory is not None else Path(tempfile.mkdtemp(prefix="wskit-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start (again, on the same port and files) and wait until it answers PING."""
        assert REDIS_SERVER is not None and self.process is None
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence]
        args += ["--dir", str(self.directory)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def command(self, *args: str) -> str:
        """Send one command, return its reply as raw text (enough for PING, SAVE, PUBSUB, CLIENT...)."""
        payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(payload)
            data = b""
            sock.settimeout(0.2)
            for _ in range(1000):  # bounded: a reply larger than that many reads is not ours
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
                if data.startswith((b"+", b"-", b":")) and data.endswith(b"\r\n"):
                    break
        text = data.decode()
        return text[1:].strip() if text[:1] in "+-:" else text

    def kill(self) -> None:
        """SIGKILL: the abrupt failure the brokers must survive."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        """Kill it and remove its directory if it made it."""
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


def redis_or_skip(*, persistent: bool = False) -> RedisServer | str:
    """A started server of our own, else ``REDIS_URL``; skips (fails under CI) without either."""
    if REDIS_SERVER is not None:
        server = RedisServer(persistent=persistent)
        server.start()
        return server
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    no_redis("redis-server not on PATH and REDIS_URL not set (make test installs redis-server)")


def redis_url_for_tests() -> Iterator[str]:
    """The body of a ``redis_url`` fixture: a server of our own (stopped after), else ``REDIS_URL``."""
    found = redis_or_skip()
    if isinstance(found, str):
        yield found
        return
    try:
        yield found.url
    finally:
        found.stop()
