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
