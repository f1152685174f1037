"""The SERVER_SHUTDOWN notice spreads retryAfterMs over SHUTDOWN_RETRY_JITTER_MS, per
connection, so a restarted server is not hit by every client in the same second."""

from __future__ import annotations

import random
from typing import Any

import pytest
from tests.subscriptions.peers import MemoryPeer

from wskit import Router
from wskit.config import ConfigError, Settings, load_settings
from wskit.runtime import Runtime, shutdown_notice
from wskit.testing import TestClient

__all__: list[str] = []

BASE, JITTER = 1000, 5000


def _retry_after(frame: bytes) -> int:
    import json

    notice = json.loads(frame)
    assert notice["type"] == "SERVER_SHUTDOWN"
    return int(notice["payload"]["retryAfterMs"])


def test_notice_values_stay_in_the_window_and_cover_it() -> None:
    """10,000 draws: every value in [base, base + jitter), and each tenth of the window used
    (a spread, not a few fixed values)."""
    settings = Settings(shutdown_retry_after_ms=BASE, shutdown_retry_jitter_ms=JITTER)
    draw = random.Random(7)
    values = [_retry_after(shutdown_notice("r", settings, draw=draw)) for _ in range(10_000)]
    assert min(values) >= BASE and max(values) < BASE + JITTER
    assert {(v - BASE) * 10 // JITTER for v in values} == set(range(10))


def test_no_jitter_gives_the_base() -> None:
    """SHUTDOWN_RETRY_JITTER_MS=0: every notice says the base value."""
    settings = Settings(shutdown_retry_after_ms=BASE, shutdown_retry_jitter_ms=0)
    assert {_retry_after(shutdown_notice("r", settings)) for _ in range(100)} == {BASE}


def test_setting_reads_the_environment_and_refuses_negatives() -> None:
    """SHUTDOWN_RETRY_JITTER_MS comes from the environment (default 5000); a negative fails at start."""
    assert load_settings({}, {}).shutdown_retry_jitter_ms == 5000
    assert load_settings({}, {"SHUTDOWN_RETRY_JITTER_MS": "250"}).shutdown_retry_jitter_ms == 250
    with pytest.raises(ConfigError, match="SHUTDOWN_RETRY_JITTER_MS"):
        load_settings({}, {"SHUTDOWN_RETRY_JITTER_MS": "-1"})


async def test_drain_gives_connections_spread_values() -> None:
    """A drain sends each of 200 connections its own value: all within the window, not all
    the same (the notice is no longer one frame for everyone)."""
    router: Router[Any] = Router()
    runtime = Runtime(router, settings=Settings(shutdown_retry_after_ms=BASE, shutdown_retry_jitter_ms=JITTER))
    router.attach(runtime)
    clients = [TestClient(router) for _ in range(200)]
    for client in clients:
        await client.connect()
    await runtime.drain(0)
    values = []
    for client in clients:
        values.append(int((await MemoryPeer(client).recv())["payload"]["retryAfterMs"]))
        await client.close()
    assert all(BASE <= v < BASE + JITTER for v in values)
    assert len(set(values)) > 100
