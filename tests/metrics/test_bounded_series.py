"""A client cannot grow the number of series: what it sends only moves bounded ones.

The attack: 1,000 frames with distinct unknown types, 1,000 junk frames, 1,000 invalid
payloads of a declared type, and 1,000 upgrades refused on 1,000 distinct paths. The lines of
the exposition before and after are the same series; only their values moved.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from tests.metrics.scraping import http_get, rpc_call, scrape, served
from tests.support.serving import Served, prefix_of
from websockets.asyncio.client import ClientConnection, connect

pytestmark = pytest.mark.timeout(120)

ATTACK = 1000


@pytest.mark.parametrize("way", ["picows", "aiohttp", "uvicorn"])
async def test_a_client_cannot_create_series(way: str) -> None:
    """After every declared type has been used once, the attack adds no series, and the
    bounded ones it hits count it all (other, INVALID_ARGUMENT, UNIMPLEMENTED, path)."""
    async with served(way, path="/live") as server:
        url = f"ws://127.0.0.1:{server.port}{prefix_of(server)}/live"
        async with connect(url, open_timeout=5) as ws:
            assert (await rpc_call(ws, "ECHO", "x", "e"))["type"] == "ECHO_OK"
            assert (await rpc_call(ws, "FAIL", "x", "f"))["type"] == "RPC_ERROR"
            await ws.send(json.dumps({"type": "PING", "meta": {}, "payload": {"text": "x"}}))
            assert json.loads(await ws.recv())["type"] == "PONG"
            before = await scrape(server)
            await _flood(ws)
        await _refused_upgrades(server)
        after = await scrape(server)
    assert after.series() == before.series()
    assert len(after.text.splitlines()) == len(before.text.splitlines())
    received_other = after.value("wskit_messages_received_total", type="other")
    assert received_other - before.value("wskit_messages_received_total", type="other") == 3 * ATTACK
    assert after.value("wskit_errors_total", code="UNIMPLEMENTED") == ATTACK
    assert after.value("wskit_errors_total", code="INVALID_ARGUMENT") == 2 * ATTACK
    assert after.value("wskit_upgrades_refused_total", reason="path") == ATTACK


async def _flood(ws: ClientConnection) -> None:
    """The frames, written back to back, then every answer read (one error each)."""
    for i in range(ATTACK):
        await ws.send(json.dumps({"type": f"NOPE_{i}", "meta": {}, "payload": {}}))
        await ws.send(f"junk {i} {{")
        await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": f"b{i}"}, "payload": {"txt": i}}))
    codes: dict[str, int] = {}
    async with asyncio.timeout(60):
        for _ in range(3 * ATTACK):
            code = json.loads(await ws.recv())["payload"]["code"]
            codes[code] = codes.get(code, 0) + 1
    assert codes == {"UNIMPLEMENTED": ATTACK, "INVALID_ARGUMENT": 2 * ATTACK}


async def _refused_upgrades(server: Served) -> None:
    """1,000 upgrades on distinct paths, 20 at a time."""
    prefix = prefix_of(server)

    async def one(i: int) -> None:
        status = (await http_get(server.port, f"{prefix}/probe/{i}", upgrade=True)).status
        assert status in (403, 404)

    for start in range(0, ATTACK, 20):
        await asyncio.gather(*(one(i) for i in range(start, start + 20)))
