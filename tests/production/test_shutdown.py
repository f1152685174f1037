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
from collections.abc import Callable
from pathlib import Path

from tests.production.conftest import build_router, reap, start_server_process, ws_client
from tests.support.redis_server import free_port
from tests.support.waiting import PATIENCE_S, eventually
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

APP = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.production.conftest import build_router
    from wskit import serve
    serve(build_router(), host="127.0.0.1", port={port}, shutdown_grace_ms={grace},
          shutdown_retry_after_ms=2500, shutdown_retry_jitter_ms=0)
    """
)


#: the app of APP plus LATE_SAY: says "started" to its sender, waits ``ms``, then publishes to
#: "all" (an in-flight publish)
REDIS_APP = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from tests.production.conftest import Heard, Slow, build_router
    from wskit import Context, serve, message
    router = build_router()

    @router.on(message("LATE_SAY", Slow))
    async def late_say(ctx: Context[Slow]) -> None:
        await ctx.send(Heard, {{"text": "started"}})  # the test signals only once the handler runs
        await asyncio.sleep(ctx.payload.ms / 1000)
        await ctx.publish("all", Heard, {{"text": "published during the grace period"}})

    serve(router, host="127.0.0.1", port={port}, shutdown_grace_ms={grace})
    """
)


async def _served(ws: ClientConnection) -> None:
    """Round-trip an ECHO on ``ws``: the server has read every frame sent before it (an RPC sent
    earlier is in flight), and the connection is open on its side too."""
    await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "probe"}, "payload": {"text": "probe"}}))
    async with asyncio.timeout(PATIENCE_S):
        answer = json.loads(await ws.recv())
    assert answer["meta"]["correlationId"] == "probe", answer


def _start(grace_ms: int, env: dict[str, str] | None = None, app: str = APP) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    code = app.format(root=str(Path.cwd()), port=port, grace=grace_ms)
    return start_server_process(["-c", code], port, env), port


async def test_sigterm_drains_in_flight_rpcs_then_closes_1001_and_exits_0() -> None:
    """SIGTERM: SERVER_SHUTDOWN notice with retryAfterMs, the RPC in flight still answers, new
    work gets UNAVAILABLE, then close 1001 and exit status 0."""
    proc, port = _start(grace_ms=3000)
    try:
        async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "slow"}, "payload": {"ms": 600}}))
            await _served(ws)
            os.kill(proc.pid, signal.SIGTERM)
            seen: list[dict[str, object]] = []
            async with asyncio.timeout(PATIENCE_S):
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
        reap(proc)


async def test_grace_period_is_bounded() -> None:
    """A handler longer than the grace period does not hold the process: it exits 0 in time."""
    proc, port = _start(grace_ms=300)
    try:
        async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "s"}, "payload": {"ms": 20000}}))
            await _served(ws)
            started = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 15) == 0
            # the handler would hold it 20 s: this bound tells "grace is bounded" from "waited it out"
            assert time.monotonic() - started < 10
    finally:
        reap(proc)


async def test_new_connections_are_refused_while_draining(make_server: object) -> None:
    """During the grace period the listener is closed: no new connection gets in."""
    proc, port = _start(grace_ms=2000)
    try:
        async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "s"}, "payload": {"ms": 1000}}))
            await _served(ws)
            os.kill(proc.pid, signal.SIGTERM)
            async with asyncio.timeout(PATIENCE_S):
                # sent once the listener is closed, while the SLEEP keeps the process draining
                assert json.loads(await ws.recv())["type"] == "SERVER_SHUTDOWN"
            refused = False
            try:
                async with ws_client(f"ws://127.0.0.1:{port}/"):
                    pass
            except (OSError, Exception):
                refused = True
            assert refused
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        reap(proc)


async def _close_code_after(proc: subprocess.Popen[bytes], port: int, sig: signal.Signals) -> int | None:
    async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
        await _served(ws)
        os.kill(proc.pid, sig)
        async with asyncio.timeout(PATIENCE_S):
            try:
                while True:
                    await ws.recv()
            except ConnectionClosed:
                pass
        code: int | None = ws.close_code
        return code


async def test_sigint_shuts_down_gracefully_and_exits_0() -> None:
    """SIGINT (Ctrl-C) is handled like SIGTERM: clients get 1001 and the process exits 0."""
    proc, port = _start(grace_ms=1000)
    try:
        assert await _close_code_after(proc, port, signal.SIGINT) == 1001
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        reap(proc)


async def test_shutdown_close_code_1012_from_the_environment() -> None:
    """SHUTDOWN_CLOSE_CODE=1012 (service restart): clients are closed with 1012 on SIGTERM."""
    proc, port = _start(grace_ms=1000, env={"SHUTDOWN_CLOSE_CODE": "1012"})
    try:
        assert await _close_code_after(proc, port, signal.SIGTERM) == 1012
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        reap(proc)


def test_bad_shutdown_close_code_stops_the_process() -> None:
    """SHUTDOWN_CLOSE_CODE=1000 fails at start, naming the variable."""
    code = "from wskit import Router, serve; serve(Router())"
    env = {**os.environ, "SHUTDOWN_CLOSE_CODE": "1000"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode != 0
    assert "SHUTDOWN_CLOSE_CODE" in proc.stderr


def _instance_keys(url: str) -> set[bytes]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return set(client.scan_iter("wskit:i:*"))
    finally:
        client.close()


async def _wait_for_keys(url: str, present: Callable[[set[bytes]], bool]) -> set[bytes]:
    """The instance keys once ``present`` holds (instances register with their first heartbeat)."""

    async def keys() -> set[bytes] | None:
        found = await asyncio.to_thread(_instance_keys, url)
        return found if present(found) else None

    found = await eventually(keys, what="the instance keys")
    assert found is not None
    return found


async def test_broker_is_flushed_and_closed_on_shutdown(redis_url: str) -> None:
    """With REDIS_URL, a publish made by a handler during the grace period reaches a client of
    another instance before the process exits 0, and the broker is closed (its instance key is
    deleted at once, not left to expire as a killed process leaves it)."""
    from wskit import Server
    from wskit.pubsub import RedisBroker

    broker = RedisBroker(redis_url)
    other = Server(build_router(), port=0, env={}, broker=broker)
    await other.start()
    mine = f"wskit:i:{broker.instance_id}".encode()
    before = await _wait_for_keys(redis_url, lambda keys: mine in keys)
    proc, port = _start(grace_ms=3000, env={"REDIS_URL": redis_url}, app=REDIS_APP)
    try:
        async with ws_client(other.url) as listener, ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await listener.send(json.dumps({"type": "SAY", "payload": {"text": "join"}}))
            async with asyncio.timeout(5):
                assert json.loads(await listener.recv())["payload"]["text"] == "join"
            theirs = await _wait_for_keys(redis_url, lambda keys: bool(keys - before)) - before
            await ws.send(json.dumps({"type": "LATE_SAY", "payload": {"ms": 700}}))
            async with asyncio.timeout(PATIENCE_S):
                assert json.loads(await ws.recv())["payload"]["text"] == "started"
            os.kill(proc.pid, signal.SIGTERM)
            async with asyncio.timeout(PATIENCE_S):
                heard = json.loads(await listener.recv())
            assert heard["payload"]["text"] == "published during the grace period"
            assert await asyncio.to_thread(proc.wait, 10) == 0
        left = await asyncio.to_thread(_instance_keys, redis_url)
        assert not theirs & left, "the exited instance left its key: its broker was not closed"
        assert mine in left
    finally:
        reap(proc)
        await other.stop()


def _two_signals_at_once(pid: int) -> None:
    """SIGTERM and SIGINT to ``pid``, both pending when it next runs.

    Sent one after the other, the first wakes the server, which (at a higher priority than a
    niced test run) may finish its whole shutdown before this process sends the second: that
    one then lands after the event loop has closed and kills the process (status -15).
    Stopped meanwhile, the server gets both at once. (Two SIGTERMs would merge into one.)
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_two_signals_at_once_stop_once_and_exit_0() -> None:
    """SIGTERM and SIGINT at once (a terminal's Ctrl-C reaching a process and its parent's
    forward of it, or make and its child both signalled): one stop request, one graceful
    teardown; exit 0 with no error logged."""
    for connected in (False, True):
        proc, port = _start(grace_ms=5000)
        try:
            async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
                if not connected:
                    await ws.close()  # returns once the server closed its side
                _two_signals_at_once(proc.pid)
                try:
                    async with asyncio.timeout(10):
                        while connected:  # bounded by the timeout: frames until the close
                            await ws.recv()
                except ConnectionClosed:
                    pass
            assert await asyncio.to_thread(proc.wait, 10) == 0
            assert proc.stdout is not None
            output = proc.stdout.read().decode()
            assert "Traceback" not in output and "ERROR" not in output, output
            assert "second signal" not in output, output  # the same request, delivered twice
        finally:
            reap(proc)


async def test_a_second_signal_later_in_the_drain_closes_at_once() -> None:
    """A second SIGTERM a moment after the first (someone means it: more than
    server._SAME_STOP_S later) ends the drain at once: the RPC still running is answered
    UNAVAILABLE instead of finishing, and the process exits 0 well before the grace ends."""
    proc, port = _start(grace_ms=20000)
    try:
        async with ws_client(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"type": "SLEEP", "meta": {"correlationId": "slow"}, "payload": {"ms": 15000}}))
            await _served(ws)
            os.kill(proc.pid, signal.SIGTERM)
            await asyncio.sleep(1.0)
            started = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            answers: list[dict[str, object]] = []
            try:
                async with asyncio.timeout(PATIENCE_S):
                    while True:
                        answers.append(json.loads(await ws.recv()))
            except ConnectionClosed:
                pass
        assert await asyncio.to_thread(proc.wait, PATIENCE_S) == 0
        assert time.monotonic() - started < 10
        slow = [a for a in answers if (a.get("meta") or {}).get("correlationId") == "slow"]  # type: ignore[union-attr]
        assert [a["type"] for a in slow] == ["RPC_ERROR"], answers
        assert proc.stdout is not None and "second signal" in proc.stdout.read().decode()
    finally:
        reap(proc)


async def test_concurrent_stops_share_one_teardown() -> None:
    """stop(), stop() and shutdown() at once (a second signal during a graceful shutdown): each
    returns normally; before, the later ones tore the runner down again and raised."""
    from wskit import Router, Server

    server = Server(Router(), port=0, env={})
    await server.start()
    results = await asyncio.gather(server.stop(), server.stop(), server.shutdown(grace_ms=0), return_exceptions=True)
    assert results == [None, None, None]
    assert server.connection_count == 0
