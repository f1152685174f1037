"""A log handler that raises costs the log line, never a connection or a scrape."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

import pytest
from tests.metrics.scraping import WAYS, rpc_call, scrape, served
from websockets.asyncio.client import connect


class Raising(logging.Handler):
    """A handler whose output is gone (a closed pipe, a full disk) and says so by raising."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.calls += 1
        raise OSError("log pipe gone")

    def handleError(self, record: logging.LogRecord) -> None:
        raise OSError("and its error handling too")


@contextlib.contextmanager
def raising_handler() -> Iterator[Raising]:
    """The handler on the ``wskit`` logger at INFO (serve()'s level), removed afterwards."""
    handler = Raising()
    logger = logging.getLogger("wskit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.parametrize("way", WAYS)
async def test_connect_send_and_disconnect_work_while_every_log_line_fails(way: str) -> None:
    """On a running server, two clients in turn connect, send an event and an RPC, and close
    while every line the server logs (connect, disconnect events...) raises: both are served,
    the scrape after them counts both, and the handler was really called."""
    async with served(way) as server:
        with raising_handler() as raising:
            for n in range(2):
                async with connect(server.url, open_timeout=5) as ws:
                    await ws.send(json.dumps({"type": "PING", "meta": {}, "payload": {"text": "x"}}))
                    assert json.loads(await ws.recv())["type"] == "PONG"
                    assert (await rpc_call(ws, "ECHO", str(n), f"e{n}"))["payload"] == {"text": str(n)}
            exposed = await scrape(server)
    assert exposed.value("wskit_connections_opened_total") == 2
    assert exposed.value("wskit_messages_received_total", type="ECHO") == 2
    assert raising.calls > 0
