"""``serve(workers=2)``: one scrape, whichever worker answers it, is the sum of both.

A real server process (``tests.metrics.worker_app``) forks two workers sharing the port
(SO_REUSEPORT) and a Redis of the test's own; clients spread over both workers (each asks
which pid holds it), send known numbers of messages, and every scrape must show the totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.metrics.scraping import Exposition, http_get, parse, rpc_call
from tests.support.redis_server import free_port, redis_url_for_tests
from tests.support.waiting import eventually
from websockets.asyncio.client import ClientConnection, connect

pytestmark = pytest.mark.timeout(120)

#: clients opened at least (the kernel spreads them over the workers), and at most while
#: waiting for the second worker to listen
CLIENTS = 40
MAX_CLIENTS = 400


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from redis_url_for_tests()


class Workers:
    """``python -m tests.metrics.worker_app`` with two workers on a free port."""

    def __init__(self, redis_url: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        args = [sys.executable, "-m", "tests.metrics.worker_app", "--port", str(self.port), "--redis", redis_url]
        args += ["--namespace", f"m{uuid.uuid4().hex[:8]}"]
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        env.pop("METRICS_DIR", None)
        env.pop("METRICS", None)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_listening(self, timeout: float = 20.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded: 20 s
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"server did not listen: {self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
async def workers(redis_url: str, tmp_path: Path) -> AsyncIterator[Workers]:
    server = Workers(redis_url, tmp_path / "server.log")
    try:
        await asyncio.to_thread(server.wait_listening)
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def _scrape(port: int) -> Exposition:
    response = await http_get(port, "/metrics")
    assert response.status == 200, response.body[:300]
    return parse(response.body.decode())


def _writers(directory: Path) -> set[int]:
    """The pids that wrote process files in ``directory``."""
    return {int(p.name.split("-")[0]) for p in directory.glob("*.json")}


def _metrics_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("wskit-metrics-*"))


async def test_every_scrape_is_the_sum_of_both_workers(workers: Workers) -> None:
    """40 or more clients over both workers, each sending its own number of ECHOs: every one of 20
    scrapes (spread over the workers by the kernel) shows all 40 connections and every
    message; after one worker stops, its counters stay in the sum and its connections leave
    the gauge; when the server exits, its private metrics directory is gone."""
    clients: list[ClientConnection] = []
    try:
        pids: dict[ClientConnection, int] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        # the second worker may still be starting when the port first answers: clients are
        # opened until both hold some (bounded: MAX_CLIENTS, 20 s)
        while len(clients) < CLIENTS or len(set(pids.values())) < 2:
            assert len(clients) < MAX_CLIENTS and loop.time() < deadline, "only one worker took connections"
            ws = await connect(f"ws://127.0.0.1:{workers.port}/", open_timeout=5)
            clients.append(ws)
            pids[ws] = int((await rpc_call(ws, "WHOAMI", "?", f"w{len(clients)}"))["payload"]["text"])
            if len(clients) >= CLIENTS:
                await asyncio.sleep(0.05)
        opened = len(clients)
        sent = 0
        for i, ws in enumerate(clients):
            for n in range(i % 4 + 1):
                assert (await rpc_call(ws, "ECHO", "x", f"e{i}-{n}"))["type"] == "ECHO_OK"
                sent += 1

        async def both_counted() -> bool:
            exposed = await _scrape(workers.port)
            return (
                exposed.value("wskit_connections") == opened
                and exposed.value("wskit_messages_received_total", type="ECHO") == sent
            )

        await eventually(both_counted, what="the scrape adds up both workers")
        for _ in range(20):
            exposed = await _scrape(workers.port)
            assert exposed.value("wskit_connections") == opened
            assert exposed.value("wskit_connections_opened_total") == opened
            assert exposed.value("wskit_messages_received_total", type="ECHO") == sent
            assert exposed.value("wskit_messages_received_total", type="WHOAMI") == opened
            assert exposed.value("wskit_handler_duration_seconds_count", type="ECHO") == sent
            assert exposed.value("wskit_messages_sent_total", type="ECHO_OK") == sent
            assert "process_cpu_seconds_total" not in exposed.types  # one process's figure would mislead

        ours = [d for d in _metrics_dirs() if _writers(d) >= set(pids.values())]
        assert len(ours) == 1, "one private directory holds both workers' files"
        stopped = next(iter(pids.values()))
        os.kill(stopped, signal.SIGTERM)
        staying = sum(1 for pid in pids.values() if pid != stopped)

        async def one_left() -> bool:
            exposed = await _scrape(workers.port)
            return exposed.value("wskit_connections") == staying

        await eventually(one_left, timeout=15, what="the stopped worker's connections leave the gauge")
        exposed = await _scrape(workers.port)
        assert exposed.value("wskit_messages_received_total", type="ECHO") == sent
        assert exposed.value("wskit_connections_opened_total") == opened
    finally:
        for ws in clients:
            await ws.close()
    await asyncio.to_thread(workers.stop)
    assert workers.proc.returncode == 0, workers.output()
    assert not ours[0].exists()
