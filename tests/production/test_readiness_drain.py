"""Readiness that drains: from SIGTERM until the process exits, /readyz answers 503 while the
listener stays open and in-flight work finishes, so a load balancer probing it stops sending
new clients before the connections close (issue 17). On both of serve()'s hosts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap
from pathlib import Path

import pytest
from tests.production.conftest import http_status, reap, start_server_process, ws_client
from tests.support.redis_server import free_port
from tests.support.waiting import PATIENCE_S

APP = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.production.conftest import build_router
    from wskit import serve
    serve(build_router(), host="127.0.0.1", port={port}, shutdown_grace_ms=4000,
          shutdown_retry_jitter_ms=0, log_format="json")
    """
)


@pytest.mark.parametrize("transport", ["picows", "aiohttp"])
async def test_readyz_answers_503_while_a_sigterm_drains_and_the_listener_stays_open(transport: str) -> None:
    """An RPC holds the drain for ~1.5 s: meanwhile /readyz is 503 "draining", /healthz 200,
    an upgrade is refused 503 (not a refused TCP connection), and the RPC still answers;
    then the process exits 0 and its log has the shutdown phases as JSON events."""
    port = free_port()
    code = APP.format(root=str(Path.cwd()), port=port)
    proc = start_server_process(["-c", code], port, {"WSKIT_TRANSPORT": transport})
    try:
        assert await http_status(port, "/readyz", upgrade=False) == (200, "broker ready")
        async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "slow"}, "payload": {"ms": 1500}}))
            await asyncio.sleep(0.2)  # the RPC is running
            os.kill(proc.pid, signal.SIGTERM)
            async with asyncio.timeout(PATIENCE_S):
                notice = json.loads(await ws.recv())
            assert notice["type"] == "SERVER_SHUTDOWN"
            # the drain is under way (the RPC has ~1.3 s to go): the port still answers
            assert await http_status(port, "/readyz", upgrade=False) == (503, "draining")
            assert (await http_status(port, "/healthz", upgrade=False))[0] == 200
            assert (await http_status(port, "/"))[0] == 503
            async with asyncio.timeout(PATIENCE_S):
                answer = json.loads(await ws.recv())
            assert answer["meta"]["correlationId"] == "slow" and answer["type"] == "SLEPT", answer
        assert await asyncio.to_thread(proc.wait, PATIENCE_S) == 0
        assert proc.stdout is not None
        events = [json.loads(line) for line in proc.stdout.read().decode().splitlines() if line.startswith("{")]
        phases = [e["phase"] for e in events if e.get("event") == "shutdown"]
        assert phases[:3] == ["draining", "drained", "closing"], phases
        drained = next(e for e in events if e.get("phase") == "drained")
        assert drained["took_ms"] >= 1000 and drained["unfinished"] is False, drained
    finally:
        reap(proc)
