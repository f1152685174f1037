"""Requests, events and errors against a real server over a real socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.client.app import Echo, GetUser, Heard, Say, Seen, Slow, User, build_router, serving
from tests.support.waiting import PATIENCE_S, eventually

from wskit.client import Client, ClientError, Message
from wskit.errors import WsKitError


async def test_request_returns_the_typed_response() -> None:
    """request() returns the declared response message with a payload of the declared class."""
    async with serving(build_router(Seen())) as server, Client(server.url) as client:
        user = await client.request(GetUser, {"id": "1"})
        assert user.type == "USER"
        assert isinstance(user.payload, User)
        assert user.payload.name == "Ada"
        assert user.meta["correlationId"]


async def test_progress_callback_gets_each_progress_in_order() -> None:
    """on_progress is called with every $ws:rpc-progress payload, in order, before the reply."""
    stages: list[object] = []
    async with serving(build_router(Seen())) as server, Client(server.url) as client:
        await client.request(GetUser, {"id": "1"}, on_progress=stages.append)
    assert stages == [{"stage": "loading"}, {"stage": "found"}]


async def test_server_error_raises_client_error_with_its_fields() -> None:
    """An RPC_ERROR becomes a ClientError (a WsKitError) with code, details, retryable, retry_after_ms."""
    async with serving(build_router(Seen())) as server, Client(server.url) as client:
        with pytest.raises(ClientError) as caught:
            await client.request(GetUser, {"id": "2"})
    error = caught.value
    assert isinstance(error, WsKitError)
    assert (error.code, error.message, error.details) == ("NOT_FOUND", "no such user", {"id": "2"})
    assert error.retryable is False and error.retry_after_ms is None


async def test_cancelling_the_awaiting_task_cancels_the_handler() -> None:
    """Cancelling a task awaiting request() sends $ws:rpc-cancel: the server's handler is cancelled."""
    seen = Seen()
    async with serving(build_router(seen)) as server, Client(server.url) as client:
        task = asyncio.create_task(client.request(Slow, {"key": "k"}, timeout=PATIENCE_S))
        await asyncio.wait_for(seen.event(seen.started, "k").wait(), PATIENCE_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(seen.event(seen.cancelled, "k").wait(), PATIENCE_S)


async def test_timeout_raises_deadline_exceeded_and_cancels_on_the_server() -> None:
    """A request without an answer in time raises DEADLINE_EXCEEDED (retryable) and is cancelled
    on the server."""
    seen = Seen()
    async with serving(build_router(seen)) as server, Client(server.url) as client:
        with pytest.raises(ClientError) as caught:
            await client.request(Slow, {"key": "t"}, timeout=0.2)
        assert caught.value.code == "DEADLINE_EXCEEDED" and caught.value.retryable
        await asyncio.wait_for(seen.event(seen.cancelled, "t").wait(), PATIENCE_S)


async def test_send_and_on_handler_sync_and_async() -> None:
    """send() reaches the server; on() handlers (sync and async) get typed messages; the
    function on() returns removes the handler."""
    seen = Seen()
    sync_got: list[Message[object]] = []
    async_got: list[str] = []

    async def async_handler(msg: Message[object]) -> None:
        await asyncio.sleep(0)
        async_got.append(msg.payload.text)  # type: ignore[attr-defined]

    async with serving(build_router(seen)) as server, Client(server.url) as client:
        remove = client.on(Heard, sync_got.append)
        client.on(Heard, async_handler)
        await client.send(Say, {"text": "one"})
        await eventually(lambda: len(sync_got) == 1 and async_got == ["one"])
        remove()
        await client.send(Say, {"text": "two"})
        await eventually(lambda: async_got == ["one", "two"])
        # the request after "two" is answered after HEARD "two" was handled (frames in order)
        await client.request(Echo, {"text": "x"})
    assert [m.payload.text for m in sync_got] == ["one"]  # type: ignore[attr-defined]
    assert seen.said == ["one", "two"]


async def test_invalid_outbound_payload_is_refused_before_sending() -> None:
    """A payload that fails its schema raises OutboundValidationError and nothing is sent."""
    from wskit.schema import OutboundValidationError

    seen = Seen()
    async with serving(build_router(seen)) as server, Client(server.url) as client:
        with pytest.raises(OutboundValidationError):
            await client.send(Say, {"text": 5})
        await client.request(Echo, {"text": "after"})
    assert seen.said == []


@pytest.mark.parametrize("transport", ["picows", "aiohttp"])
async def test_close_is_a_closing_handshake_the_server_sees_as_1000(transport: str) -> None:
    """close() (and leaving ``async with``) sends a close frame and waits for the answer: the
    server's on_close sees 1000 "client closed", not 1006 (the HTTP session was once closed
    under the handshake, cutting the socket)."""
    router = build_router(Seen())
    codes: list[tuple[int | None, str | None]] = []

    @router.on_close
    async def closed(ctx: Any) -> None:
        codes.append((ctx.close_code, ctx.close_reason))

    async with serving(router, transport=transport) as server:
        client = Client(server.url)
        await client.connect()
        await client.request(GetUser, {"id": "1"})
        await client.close()
        async with Client(server.url) as again:
            await again.request(GetUser, {"id": "1"})
        await eventually(lambda: len(codes) == 2)
    assert codes == [(1000, "client closed"), (1000, "client closed")]
