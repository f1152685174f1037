"""Every request gets exactly one terminal answer, even when the server stops under it.

Found by a hostile tester: RPCs still running when the shutdown's grace period ended got no
answer before the 1001 close, though PROTOCOL.md promises one per request.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.production.conftest import ws_client
from websockets.exceptions import ConnectionClosed

from wskit import Server


async def _frames_until_close(ws: Any) -> tuple[list[dict[str, Any]], int | None]:
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        try:
            while True:
                frames.append(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("how", ["shutdown", "stop"])
async def test_rpcs_cut_off_by_a_shutdown_are_answered_unavailable(make_server: Any, how: str) -> None:
    """Two SLEEP RPCs longer than the grace period: each gets RPC_ERROR UNAVAILABLE (retryable,
    with retryAfterMs) before the close; an RPC that finished in time got its reply only."""
    server: Server = await make_server(shutdown_retry_after_ms=1500)
    async with ws_client(server.url) as ws:
        for cid, ms in (("long1", 60_000), ("long2", 60_000), ("short", 10)):
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": cid}, "payload": {"ms": ms}}))
        async with asyncio.timeout(5):
            first = json.loads(await ws.recv())  # the short one finished; the long ones run
        assert (first["type"], first["meta"]["correlationId"]) == ("SLEPT", "short")
        if how == "shutdown":
            stopping = asyncio.ensure_future(server.shutdown(grace_ms=200))
        else:
            stopping = asyncio.ensure_future(server.stop())
        frames, code = await _frames_until_close(ws)
        await stopping
    by_cid: dict[str, list[dict[str, Any]]] = {"short": [first]}
    for frame in frames:
        cid = frame.get("meta", {}).get("correlationId")
        if cid is not None:
            by_cid.setdefault(cid, []).append(frame)
    assert [f["type"] for f in by_cid["short"]] == ["SLEPT"]
    for cid in ("long1", "long2"):
        (answer,) = by_cid[cid]
        assert answer["type"] == "RPC_ERROR"
        assert answer["payload"]["code"] == "UNAVAILABLE"
        assert answer["payload"]["retryable"] is True
        assert answer["payload"]["retryAfterMs"] == 1500
    assert code == 1001
    if how == "shutdown":  # the notice came first, then the answers
        assert [f["type"] for f in frames] == ["SERVER_SHUTDOWN", "RPC_ERROR", "RPC_ERROR"]


@pytest.mark.parametrize("how", ["shutdown", "stop"])
async def test_requests_waiting_at_the_in_flight_bound_are_answered_too(make_server: Any, how: str) -> None:
    """max_inflight_rpcs=1: one SLEEP runs, two more wait unread behind it. A shutdown (or stop)
    answers all three UNAVAILABLE before the close, and starts none of the waiting ones."""
    from tests.production.conftest import build_router

    server: Server = await make_server(router=build_router(max_inflight_rpcs=1), shutdown_grace_ms=100)
    async with ws_client(server.url) as ws:
        for cid in ("s0", "q0", "q1"):
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": cid}, "payload": {"ms": 60_000}}))
        (conn,) = list(server.runtime.connections) if server.runtime else []
        async with asyncio.timeout(5):
            while not conn.rpcs:  # noqa: ASYNC110 - bounded: the first SLEEP has started
                await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(server.shutdown(grace_ms=100) if how == "shutdown" else server.stop())
        frames, code = await _frames_until_close(ws)
        await stopping
    answers = {f["meta"]["correlationId"]: f["payload"]["code"] for f in frames if f["type"] == "RPC_ERROR"}
    assert answers == {"s0": "UNAVAILABLE", "q0": "UNAVAILABLE", "q1": "UNAVAILABLE"}
    assert code == 1001
    assert not conn.rpcs and conn.closed  # nothing started after the abort, on_close ran


@pytest.mark.parametrize("gap_ms", [0, 10, 30])
def test_a_second_signal_as_the_process_exits_does_not_kill_it(gap_ms: int) -> None:
    """SIGTERM, then another one a moment later (while the shutdown ends and the loop
    closes): the process still exits 0. Closing the loop used to restore the default
    handlers, so the second signal killed it (-15) after a clean stop."""
    import os
    import signal
    import socket
    import time

    from tests.production.conftest import reap, start_server_process

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = start_server_process(["-m", "tests.hostile.app", str(port)], port, {"SHUTDOWN_GRACE_MS": "0"})
    try:
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(gap_ms / 1000)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        reap(proc)


def test_a_signal_while_the_server_starts_stops_it_cleanly() -> None:
    """SIGTERM while serve() is still starting (its broker connecting, the port not yet open):
    the stop request is taken (exit 0), not left to the default handler (killed, -15)."""
    import signal
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from wskit import Router, serve\n"
        "from wskit.pubsub import MemoryBroker\n"
        "class SlowStart(MemoryBroker):\n"
        "    async def start(self, listener):\n"
        "        print('starting', flush=True)\n"
        "        await asyncio.sleep(1.0)\n"
        "        await super().start(listener)\n"
        "serve(Router(), host='127.0.0.1', port=0, shutdown_grace_ms=0, broker=SlowStart())\n"
        "print('returned', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "starting"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, f"exit {proc.returncode}"
        assert "returned" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_gives_the_callers_ctrl_c_back_when_it_returns() -> None:
    """After serve() returns (SIGTERM, clean shutdown), Ctrl-C raises KeyboardInterrupt again in
    the code that called it; only a default SIGTERM stays ignored (a stopped server)."""
    import signal
    import subprocess
    import sys

    code = (
        "import os, signal, threading\n"
        "from wskit import Router, serve\n"
        "threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()\n"
        "serve(Router(), host='127.0.0.1', port=0, shutdown_grace_ms=0)\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
        " signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # this process untouched
