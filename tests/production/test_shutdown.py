"""Graceful shutdown of a real server process on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.production.conftest import ws_client
from tests.support.redis_server import free_port
from websockets.exceptions import ConnectionClosed

APP = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.production.conftest import build_router
    from wskit import serve
    serve(build_router(), host="127.0.0.1", port={port}, shutdown_grace_ms={grace}, shutdown_retry_after_ms=2500)
    """
)


def _start(grace_ms: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    code = APP.format(root=str(Path.cwd()), port=port, grace=grace_ms)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


async def test_sigterm_drains_in_flight_rpcs_then_closes_1001_and_exits_0() -> None:
    """SIGTERM: SERVER_SHUTDOWN notice with retryAfterMs, the RPC in flight still answers, new
    work gets UNAVAILABLE, then close 1001 and exit status 0."""
    proc, port = _start(grace_ms=3000)
    try:
        async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "slow"}, "payload": {"ms": 600}}))
            await asyncio.sleep(0.1)
            os.kill(proc.pid, signal.SIGTERM)
            seen: list[dict[str, object]] = []
            async with asyncio.timeout(5):
                notice = json.loads(await ws.recv())
                assert notice["type"] == "SERVER_SHUTDOWN"
                assert notice["payload"]["retryAfterMs"] == 2500
                await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "late"}, "payload": {"text": "x"}}))
                try:
                    while True:
                        seen.append(json.loads(await ws.recv()))
                except ConnectionClosed:
                    pass
            by_id = {m["meta"]["correlationId"]: m for m in seen}  # type: ignore[index]
            assert by_id["slow"]["type"] == "SLEPT"
            assert by_id["late"]["payload"]["code"] == "UNAVAILABLE"  # type: ignore[index]
            assert ws.close_code == 1001
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


async def test_grace_period_is_bounded() -> None:
    """A handler longer than the grace period does not hold the process: it exits 0 in time."""
    proc, port = _start(grace_ms=300)
    try:
        async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "s"}, "payload": {"ms": 20000}}))
            await asyncio.sleep(0.1)
            started = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 10) == 0
            assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


async def test_new_connections_are_refused_while_draining(make_server: object) -> None:
    """During the grace period the listener is closed: no new connection gets in."""
    proc, port = _start(grace_ms=2000)
    try:
        async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "s"}, "payload": {"ms": 1000}}))
            await asyncio.sleep(0.1)
            os.kill(proc.pid, signal.SIGTERM)
            await asyncio.sleep(0.3)
            refused = False
            try:
                async with ws_client(f"ws://127.0.0.1:{port}/"):
                    pass
            except (OSError, Exception):
                refused = True
            assert refused
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
