"""A start that fails after the runtime began (the port is taken, the TLS pair does not load)
stops what it had started before it raises: the caller holds no server to stop, and
``async with Server(...)`` never reaches its exit."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.production.conftest import build_router
from tests.tls.certs import Issuer, Pair

from wskit import Server
from wskit.config import ConfigError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another socket listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def _pending() -> tuple[set[asyncio.Task[Any]], set[asyncio.TimerHandle]]:
    """The loop's tasks and its timers still due (the stock asyncio loop keeps them in a heap)."""
    loop = asyncio.get_running_loop()
    timers = {handle for handle in getattr(loop, "_scheduled", []) if not handle.cancelled()}
    return asyncio.all_tasks(), timers


@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_a_port_in_use_leaves_nothing_running(transport: str, taken_port: int, tmp_path: Path) -> None:
    """The bind fails after the broker, the metrics writer (METRICS_DIR), the host's timers
    (pings) and the TLS reloader started: start() raises the OSError, and no task or timer is
    left behind, the runtime no longer serves, and the router can be served again."""
    a, pair = Issuer(), Pair(tmp_path)
    a.install(pair)
    (tmp_path / "metrics").mkdir()
    router = build_router()
    options: dict[str, Any] = {
        "env": {},
        "transport": transport,
        "metrics_dir": str(tmp_path / "metrics"),
        "ping_interval": 60,
        "tls_cert_file": str(pair.cert),
        "tls_key_file": str(pair.key),
        "tls_reload_interval_s": 60,
    }
    tasks, timers = _pending()
    server = Server(router, port=taken_port, **options)
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{taken_port}"):
        await server.start()
    now_tasks, now_timers = _pending()
    assert now_tasks - tasks == set(), "tasks left running"
    assert now_timers - timers == set(), "timers left due"
    assert server.runtime is not None and not server.runtime.serving
    async with Server(router, port=0, **options) as again:
        assert again.runtime is not None and again.runtime.serving


async def test_a_pair_that_does_not_load_leaves_nothing_running(tmp_path: Path) -> None:
    """The TLS pair is read after the runtime started: a ConfigError from it leaves no task
    running either, and the runtime no longer serves."""
    a, pair = Issuer(), Pair(tmp_path)
    a.install(pair)
    pair.key.write_bytes(b"not a key\n")
    (tmp_path / "metrics").mkdir()
    tasks, timers = _pending()
    server = Server(
        build_router(),
        port=0,
        env={},
        metrics_dir=str(tmp_path / "metrics"),
        tls_cert_file=str(pair.cert),
        tls_key_file=str(pair.key),
    )
    with pytest.raises(ConfigError, match="TLS_KEY_FILE"):
        await server.start()
    now_tasks, now_timers = _pending()
    assert now_tasks - tasks == set(), "tasks left running"
    assert now_timers - timers == set(), "timers left due"
    assert server.runtime is not None and not server.runtime.serving
