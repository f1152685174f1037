"""Close frames on a real socket: codes that may not be sent are never echoed, and long
reasons are cut on a character boundary (a cut through UTF-8 makes the peer fail with 1007)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from tests.protocol.test_write_batching import WAIT, _open
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wskit import Context, Router, Server, message
from wskit.errors import clip_close_reason


class Reason(BaseModel):
    text: str


Quit = message("QUIT", Reason)


def build(codes: list[int | None], closed_event: asyncio.Event | None = None) -> Router[Any]:
    router: Router[Any] = Router()

    @router.on(Quit)
    async def quit_(ctx: Context[Reason]) -> None:
        await ctx.close(4000, ctx.payload.text)

    @router.on_close
    async def closed(ctx: Context[Any]) -> None:
        codes.append(ctx.close_code)
        if closed_event is not None:
            closed_event.set()

    return router


async def test_close_without_status_code_is_answered_1000_and_seen_as_1005() -> None:
    """An empty close frame: the server answers 1000 (1005 may not be sent); on_close sees 1005."""
    codes: list[int | None] = []
    closed = asyncio.Event()
    async with Server(build(codes, closed), port=0, env={}) as server:
        reader, writer = await _open(server.port)
        writer.write(b"\x88\x80\x00\x00\x00\x00")  # masked close frame, no payload
        async with asyncio.timeout(WAIT):
            head = await reader.readexactly(2)
            body = await reader.readexactly(head[1] & 0x7F)
        assert head[0] == 0x88
        assert int.from_bytes(body[:2], "big") == 1000
        writer.close()
        async with asyncio.timeout(WAIT):
            await closed.wait()
    assert codes == [1005]


async def test_long_multibyte_close_reason_keeps_the_close_code() -> None:
    """ctx.close(4000, 'é' * 100): the client sees 4000 and a valid, shortened reason."""
    codes: list[int | None] = []
    async with Server(build(codes), port=0, env={}) as server, connect(server.url) as ws:
        await ws.send('{"type":"QUIT","payload":{"text":"' + "é" * 100 + '"}}')
        try:
            async with asyncio.timeout(WAIT):
                await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            assert closed.rcvd.code == 4000
            assert closed.rcvd.reason == "é" * 61
        else:
            raise AssertionError("the server did not close")


def test_clip_close_reason_never_cuts_a_character() -> None:
    """Every clipped reason is valid UTF-8 of at most 123 bytes."""
    for text in ["a" * 200, "é" * 100, "€" * 60, "😀" * 40, "ok"]:
        data = clip_close_reason(text)
        assert len(data) <= 123
        assert text.startswith(data.decode("utf-8"))
