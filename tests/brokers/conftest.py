"""Redis for the broker tests: our own ``redis-server`` on a free port, never the machine's.

Without ``redis-server`` on PATH the tests use ``REDIS_URL`` (never flushed: every test
works in its own namespace); without either they are skipped, except under ``CI=true``
where a missing Redis is a failure (a green CI run must have exercised Redis).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from tests.brokers.redis_helpers import NoJitter, Pair, start_broker

__all__ = ["RedisServer"]

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _no_redis(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: Redis is required)")
    pytest.skip(reason)


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 that a test may kill and start again."""

    def __init__(self, directory: Path, *, persistent: bool = False, port: int | None = None) -> None:
        assert REDIS_SERVER is not None
        self.directory = directory
        self.persistent = persistent
        self.port = port or _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None and self.process is None
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence]
        args += ["--dir", str(self.directory)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
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
        """Send one command, return its reply as raw text (enough for PING, PUBSUB, CLIENT...)."""
        payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(payload)
            data = b""
            sock.settimeout(0.2)
            while True:
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
        """SIGKILL, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL shared by the tests of this session (each test uses its own namespace)."""
    if REDIS_SERVER is None:
        url = os.environ.get("REDIS_URL")
        if not url:
            _no_redis("neither redis-server on PATH nor REDIS_URL")
        assert url is not None
        yield url
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Starts private redis-server processes (for fault tests); kills them after the test."""
    if REDIS_SERVER is None:
        _no_redis("fault tests need redis-server on PATH")
    servers: list[RedisServer] = []

    def start(*, persistent: bool = False) -> RedisServer:
        server = RedisServer(tmp_path, persistent=persistent)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
async def pair(
    redis_server: Callable[..., RedisServer], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pair]:
    """Two brokers on a private Redis; ``a`` reconnects exactly 0.5 s after its link is cut."""
    import wskit.pubsub.redis as module

    monkeypatch.setattr(module, "random", NoJitter)  # the longest backoff: a known outage
    server = redis_server()
    a, listener = await start_broker(server.url, namespace, backoff_min_s=0.5, backoff_max_s=0.5)
    b, _ = await start_broker(server.url, namespace)
    try:
        yield Pair(server.url, a, listener, b)
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def namespace() -> str:
    """A namespace of its own for each test."""
    return f"wskit-test-{uuid.uuid4().hex[:10]}"
