"""Server processes the recovery tests kill and restart, and a switchable TCP proxy.

A :class:`ServerProcess` is ``tests.recovery.app`` on a fixed port: :meth:`kill` is a crash
(SIGKILL: no close frame, no notice), :meth:`terminate` a graceful stop (SIGTERM:
``SERVER_SHUTDOWN``, drain, exit), :meth:`start` brings it back on the same port.

A :class:`Proxy` forwards 127.0.0.1 connections to one backend port; :meth:`Proxy.switch`
points it at another and cuts the connections in flight, so a client with one URL lands on
another instance, as behind a load balancer whose backend died.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections import Counter
from pathlib import Path

from tests.production.conftest import reap, start_server_process

__all__ = ["Proxy", "ServerProcess"]

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """``tests.recovery.app`` on ``port`` (Redis broker when ``redis_url`` is given)."""

    def __init__(
        self, port: int, *, redis_url: str | None = None, namespace: str = "", env: dict[str, str] | None = None
    ) -> None:
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/"
        self.args = ["-m", "tests.recovery.app", "--port", str(port)]
        if redis_url is not None:
            self.args += ["--redis", redis_url, "--namespace", namespace]
        self.env = {"PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        #: the exit codes of the stopped runs, in order
        self.exits: list[int] = []

    def start(self) -> None:
        """Start it (again) and wait until the port accepts connections (blocking: run in a thread)."""
        assert self.proc is None or self.proc.poll() is not None
        self.proc = start_server_process(self.args, self.port, env=self.env)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self._reap(5.0)

    def terminate(self, timeout: float = 20.0) -> None:
        """SIGTERM, then wait for the graceful exit (blocking: run in a thread)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self._reap(timeout)

    def _reap(self, timeout: float) -> None:
        assert self.proc is not None
        try:
            self.exits.append(self.proc.wait(timeout))
        finally:
            reap(self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            reap(self.proc)


class Proxy:
    """A loopback TCP proxy to one backend port at a time; at most ``max_connections`` open."""

    def __init__(self, backend: int, *, max_connections: int = 16) -> None:
        self.backend: int | None = backend
        self.max_connections = max_connections
        self.port = 0
        #: how many connections were forwarded to each backend port
        self.forwarded: Counter[int] = Counter()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def switch(self, backend: int | None) -> None:
        """Forward new connections to ``backend`` (None: refuse them); cut the ones in flight
        (their peers see a reset)."""
        self.backend = backend
        for writer in list(self._open):
            writer.transport.abort()

    async def close(self) -> None:
        self.switch(self.backend)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._open) >= 2 * self.max_connections:  # two writers per forwarded connection
            writer.transport.abort()
            return
        backend = self.backend
        if backend is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend)
        except OSError:
            writer.transport.abort()
            return
        self.forwarded[backend] += 1
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}
            for w in (writer, up_writer):
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        # one direction ended: end the other too, as a TCP peer would see it
        writer.transport.abort()
