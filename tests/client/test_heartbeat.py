"""Dead-connection detection: a server that stops answering (SIGSTOP) is noticed by the
heartbeat within ping_interval + pong_timeout, and the client reconnects once it answers again."""

from __future__ import annotations

import asyncio
import os
import signal

from tests.client.app import Echo
from tests.client.process import server_process
from tests.conftest import TIME_SCALE
from tests.support.redis_server import free_port
from tests.support.waiting import PATIENCE_S, eventually

from wskit.client import Backoff, Client, Heartbeat, StateChange

PING_INTERVAL = 0.5
PONG_TIMEOUT = 0.5


async def test_a_silent_server_is_detected_within_the_heartbeat_bound(capsys: object) -> None:
    """SIGSTOP the server: the client reports ``reconnecting`` within ping_interval +
    pong_timeout (plus scheduling slack); after SIGCONT it is open again and answered."""
    port = free_port()
    loop = asyncio.get_running_loop()
    lost_at: list[float] = []

    def note(change: StateChange) -> None:
        if change.new == "reconnecting" and not lost_at:
            lost_at.append(loop.time())

    client = Client(
        f"ws://127.0.0.1:{port}/",
        heartbeat=Heartbeat(ping_interval=PING_INTERVAL, pong_timeout=PONG_TIMEOUT),
        backoff=Backoff(initial_delay=0.05, max_delay=0.2),
        connect_timeout=1.0,
        on_state=note,
    )
    with server_process(port) as proc:
        await client.connect()
        await client.request(Echo, {"text": "alive"})
        os.kill(proc.pid, signal.SIGSTOP)
        stopped_at = loop.time()
        try:
            await eventually(lambda: lost_at, timeout=PATIENCE_S)
            detected = lost_at[0] - stopped_at
            print(
                f"\ndead connection detected {detected:.3f} s after SIGSTOP "
                f"(ping_interval {PING_INTERVAL} s, pong_timeout {PONG_TIMEOUT} s)"
            )
            assert detected <= (PING_INTERVAL + PONG_TIMEOUT) + 0.25 * TIME_SCALE
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        await eventually(lambda: client.state == "open", timeout=PATIENCE_S)
        assert (await client.request(Echo, {"text": "back"})).payload.text == "back"
        await client.close()
