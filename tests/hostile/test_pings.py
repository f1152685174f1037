"""Transport pings are wskit's own sweep (not aiohttp's per-connection heartbeat timer).

A peer that answers pings, or sends anything at all, stays; one that goes silent is closed
1011 "ping timeout" within about one and a half ping intervals; pings from the peer are
answered with its payload.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from pydantic import BaseModel
from tests.production.conftest import build_router

from wskit import Context, Server, message

WAIT = 5.0


async def test_peer_answering_pings_stays_and_silent_peer_is_closed_1011(make_standalone: Any, tick: float) -> None:
    """With ping_interval=tick: an autoping client is still open after 8 intervals; a client that
    never answers is closed 1011 with a reason naming the ping timeout."""
    server: Server = await make_standalone(ping_interval=tick)
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url, autoping=True) as alive:
        # aiohttp's client answers pings while something reads
        reading = asyncio.ensure_future(alive.receive())
        async with session.ws_connect(server.url, autoping=False) as silent:
            pings = 0
            async with asyncio.timeout(WAIT):
                while True:
                    msg = await silent.receive()
                    if msg.type is aiohttp.WSMsgType.PING:
                        pings += 1
                        continue
                    break
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert msg.data == 1011
            assert "ping timeout" in msg.extra
            assert pings >= 1
        await asyncio.sleep(8 * tick)
        assert not reading.done(), reading.result()
        reading.cancel()
        assert server.watchdog.closed["ping"] == 1


async def test_ping_from_the_peer_is_answered_with_its_payload(make_standalone: Any) -> None:
    """A client's ping gets a pong carrying the same payload (autoping is ours now)."""
    server: Server = await make_standalone(ping_interval=0)
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url, autoping=False) as ws:
        await ws.ping(b"are you there")
        msg = await ws.receive(timeout=WAIT)
        assert msg.type is aiohttp.WSMsgType.PONG
        assert msg.data == b"are you there"


class Nap(BaseModel):
    ms: int


NapMsg = message("NAP", Nap)


async def test_busy_connection_that_answers_pings_is_not_closed(make_standalone: Any, tick: float) -> None:
    """A handler that keeps the read loop busy for 10 ping intervals does not get its connection
    closed: the pongs' bytes count even while nothing reads the frames they came in."""
    router = build_router()

    @router.on(NapMsg)
    async def nap(ctx: Context[Nap]) -> None:
        await asyncio.sleep(ctx.payload.ms / 1000)
        await ctx.send(NapMsg, ctx.payload)

    server: Server = await make_standalone(router=router, ping_interval=tick)
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url, autoping=True) as ws:
        await ws.send_json({"type": "NAP", "payload": {"ms": int(10 * tick * 1000)}})
        msg = await ws.receive(timeout=WAIT)  # answers pings while it waits
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        assert server.watchdog.closed["ping"] == 0
