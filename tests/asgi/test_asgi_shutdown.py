"""What a client sees when an ASGI host is stopped by SIGTERM, per host (docs/asgi.md).

Each host runs ``tests.asgi.served:app`` from its own command line in a subprocess, on a
socket bound here (127.0.0.1, port 0) and handed over as a file descriptor. The app prints
each ``on_close`` code and each lifespan answer, so the test sees both sides:

- uvicorn closes every WebSocket with 1012 at once (an RPC in flight gets no answer), and
  only then sends ``lifespan.shutdown``: no notice can be sent; exit by SIGTERM re-raised;
- hypercorn keeps WebSockets working for ``--graceful-timeout`` (the RPC in flight is
  answered), then cancels them: wskit sends ``SERVER_SHUTDOWN`` and closes 1001; exit 0.
In both, the lifespan shutdown completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.asgi.hosts import UVICORN_WS
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
#: Longest wait for a host to start, to close, and to exit (seconds).
WAIT = 10.0


def _command(host: str, fd: int) -> list[str]:
    if host == "hypercorn":
        return [
            sys.executable,
            "-m",
            "hypercorn",
            "--bind",
            f"fd://{fd}",
            "--graceful-timeout",
            "1",
            "tests.asgi.served:app",
        ]
    ws = host.removeprefix("uvicorn-")
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--fd",
        str(fd),
        "--ws",
        ws,
        "--log-level",
        "warning",
        "tests.asgi.served:app",
    ]


async def _sigterm_with_rpc_in_flight(host: str) -> tuple[list[dict[str, Any]], int | None, int, str]:
    """Connect, start a 0.3 s RPC, SIGTERM the host: the frames the client got, its close
    code, the host's exit status and its output."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once; waited for in a thread below
        _command(host, sock.fileno()),
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
        text=True,
    )
    sock.close()
    frames: list[dict[str, Any]] = []
    code: int | None = None
    try:
        async with connect(f"ws://127.0.0.1:{port}/", open_timeout=WAIT) as ws:
            await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "1"}, "payload": {"text": "hi"}}))
            async with asyncio.timeout(WAIT):
                assert json.loads(await ws.recv())["type"] == "ECHO_OK"
            await ws.send(json.dumps({"type": "SLOW", "meta": {"correlationId": "2"}, "payload": {"s": 0.3}}))
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(ConnectionClosed):
                async with asyncio.timeout(WAIT):
                    while True:
                        frames.append(json.loads(await ws.recv()))
            code = ws.protocol.close_rcvd.code if ws.protocol.close_rcvd is not None else None
        out, _ = await asyncio.to_thread(proc.communicate, timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return frames, code, proc.returncode, out


@pytest.mark.parametrize("host", [f"uvicorn-{ws}" for ws in UVICORN_WS if ws != "websockets"])
async def test_uvicorn_closes_1012_before_the_app_hears(host: str) -> None:
    """uvicorn: 1012 at once, no notice, the RPC in flight unanswered; lifespan shutdown completes."""
    frames, code, status, out = await _sigterm_with_rpc_in_flight(host)
    assert frames == []
    assert code == 1012
    assert "on_close 1012" in out
    assert out.index("on_close 1012") < out.index("lifespan.shutdown.complete")
    assert status == -signal.SIGTERM  # uvicorn re-raises the signal it caught


async def test_hypercorn_lets_work_finish_then_wskit_sends_the_notice() -> None:
    """hypercorn: the RPC in flight is answered during its graceful timeout; at the cancel,
    SERVER_SHUTDOWN then close 1001 (SHUTDOWN_CLOSE_CODE); lifespan shutdown completes; exit 0."""
    frames, code, status, out = await _sigterm_with_rpc_in_flight("hypercorn")
    assert [f["type"] for f in frames] == ["SLOW_OK", "SERVER_SHUTDOWN"]
    notice = frames[1]["payload"]
    assert notice["reason"] == "server shutting down"
    # SHUTDOWN_RETRY_AFTER_MS (1000) plus this connection's share of SHUTDOWN_RETRY_JITTER_MS (5000)
    assert 1000 <= notice["retryAfterMs"] < 6000
    assert code == 1001
    assert "on_close 1001" in out
    assert "lifespan.shutdown.complete" in out
    assert status == 0
