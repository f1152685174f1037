"""A handler that lets a ``CancelledError`` escape without being cancelled is a handler bug:
it gets ``INTERNAL`` like any other exception, reaches ``on_error``, and the connection lives.

(The error comes from awaiting a future or task that some other code cancelled; before, it
ended the reading task and so the connection, with no answer on the wire.)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel
from websockets.asyncio.client import connect

from wskit import Context, Router, Server, message, rpc
from wskit.testing import RpcError, TestClient


class Mode(BaseModel):
    wait_first: bool


class Text(BaseModel):
    text: str


Stray = message("STRAY", Mode)
StrayRpc = rpc("STRAY_RPC", Mode, "STRAY_OK", Text)
Echo = rpc("ECHO", Text, "ECHO_OK", Text)


async def _stray(wait_first: bool) -> None:
    if wait_first:
        await asyncio.sleep(0)
    victim: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    victim.cancel()
    await victim  # raises CancelledError, though nobody cancelled this handler


def build(errors: list[BaseException]) -> Router[Any]:
    router: Router[Any] = Router()

    @router.on(Stray)
    async def stray(ctx: Context[Mode]) -> None:
        await _stray(ctx.payload.wait_first)

    @router.rpc(StrayRpc)
    async def stray_rpc(ctx: Context[Mode]) -> None:
        await _stray(ctx.payload.wait_first)

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.on_error
    async def record(ctx: Context[Any], exc: BaseException) -> None:
        errors.append(exc)

    return router


@pytest.mark.parametrize("wait_first", [False, True], ids=["at-once", "after-a-wait"])
async def test_stray_cancellation_in_an_rpc_is_internal(wait_first: bool) -> None:
    """An RPC whose handler leaks CancelledError answers INTERNAL; the next RPC works."""
    errors: list[BaseException] = []
    async with TestClient(build(errors)) as client:
        with pytest.raises(RpcError) as caught:
            await client.request(StrayRpc, {"wait_first": wait_first})
        assert caught.value.code == "INTERNAL"
        assert (await client.request(Echo, {"text": "still here"})).payload.text == "still here"
    assert len(errors) == 1 and "CancelledError" in str(errors[0])


@pytest.mark.parametrize("wait_first", [False, True], ids=["at-once", "after-a-wait"])
async def test_stray_cancellation_in_an_event_over_a_socket(wait_first: bool) -> None:
    """Over a real socket: an event handler leaking CancelledError gets ERROR INTERNAL, the socket stays open."""
    errors: list[BaseException] = []
    async with Server(build(errors), port=0, env={}) as server, connect(server.url) as ws:
        await ws.send(json.dumps({"type": "STRAY", "payload": {"wait_first": wait_first}}))
        async with asyncio.timeout(3):
            answer = json.loads(await ws.recv())
        assert answer["type"] == "ERROR" and answer["payload"]["code"] == "INTERNAL"
        await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "e"}, "payload": {"text": "ok"}}))
        async with asyncio.timeout(3):
            reply = json.loads(await ws.recv())
        assert reply == {"type": "ECHO_OK", "meta": {"correlationId": "e"}, "payload": {"text": "ok"}}
    assert len(errors) == 1


Unsendable = rpc("UNSENDABLE", Mode, "UNSENDABLE_OK", Text)


async def test_error_with_details_that_are_not_json_is_internal_and_keeps_what_was_sent() -> None:
    """A handler sends a frame, then raises WsKitError with non-JSON details: the frame and an
    INTERNAL answer arrive, and the connection goes on."""
    from wskit import ErrorCode, WsKitError

    errors: list[BaseException] = []
    router = build(errors)
    note = message("NOTE", Text)

    @router.rpc(Unsendable)
    async def unsendable(ctx: Context[Mode]) -> None:
        await ctx.send(note, {"text": "before"})
        raise WsKitError(ErrorCode.NOT_FOUND, "gone", details={"what": object()})

    async with Server(router, port=0, env={}) as server, connect(server.url) as ws:
        request = {"type": "UNSENDABLE", "meta": {"correlationId": "u"}, "payload": {"wait_first": False}}
        await ws.send(json.dumps(request))
        async with asyncio.timeout(3):
            first, second = json.loads(await ws.recv()), json.loads(await ws.recv())
        assert first == {"type": "NOTE", "meta": {}, "payload": {"text": "before"}}
        assert second["type"] == "RPC_ERROR" and second["payload"]["code"] == "INTERNAL"
        await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": "e"}, "payload": {"text": "ok"}}))
        async with asyncio.timeout(3):
            assert json.loads(await ws.recv())["payload"] == {"text": "ok"}
