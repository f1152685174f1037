"""RPCs run in the reading task until their handler waits; then reading moves to a new task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, ErrorCode, Router, Server, rpc
from wskit.testing import RpcError, TestClient


class Wait(BaseModel):
    ms: int


class Done(BaseModel):
    ms: int
    task: str


Slow = rpc("SLOW", Wait, "DONE", Done)
Bounded = rpc("BOUNDED", Wait, "DONE", Done)


def build(max_inflight: int = 64) -> Router[Any]:
    router: Router[Any] = Router(max_inflight_rpcs=max_inflight)

    @router.rpc(Slow)
    async def slow(ctx: Context[Wait]) -> None:
        if ctx.payload.ms:
            await asyncio.sleep(ctx.payload.ms / 1000)
        task = asyncio.current_task()
        await ctx.reply({"ms": ctx.payload.ms, "task": task.get_name() if task else ""})

    @router.rpc(Bounded)
    async def bounded(ctx: Context[Wait]) -> None:
        # a timeout taken inside the handler must cancel the handler, never the connection's reader
        try:
            async with asyncio.timeout(ctx.payload.ms / 1000):
                await asyncio.sleep(10)
        except TimeoutError:
            await ctx.error(ErrorCode.DEADLINE_EXCEEDED, "gave up")

    return router


async def test_a_waiting_rpc_does_not_hold_up_the_next_ones() -> None:
    """A slow RPC and then fast ones: the fast answers come first (reading went on)."""
    async with TestClient(build()) as client:
        slow = asyncio.ensure_future(client.request(Slow, {"ms": 300}))
        await asyncio.sleep(0.05)
        fast = await client.request(Slow, {"ms": 0})
        assert fast.payload.ms == 0
        assert not slow.done()
        assert (await slow).payload.ms == 300


async def test_asyncio_timeout_inside_a_handler_only_ends_that_handler() -> None:
    """asyncio.timeout() entered before the handler's first wait binds to the handler's task."""
    async with TestClient(build()) as client:
        with pytest.raises(RpcError) as caught:
            await client.request(Bounded, {"ms": 50})
        assert caught.value.code == "DEADLINE_EXCEEDED"
        # the connection still reads and answers
        assert (await client.request(Slow, {"ms": 0})).payload.ms == 0


async def test_reading_pauses_at_the_in_flight_bound_and_resumes() -> None:
    """With max_inflight_rpcs=2, a third waiting RPC is read only after one of the first two ends."""
    async with TestClient(build(max_inflight=2)) as client:
        first = asyncio.ensure_future(client.request(Slow, {"ms": 200}))
        second = asyncio.ensure_future(client.request(Slow, {"ms": 200}))
        await asyncio.sleep(0.05)
        third = asyncio.ensure_future(client.request(Slow, {"ms": 0}))
        await asyncio.sleep(0.05)
        assert not third.done(), "a third RPC must wait while two are in flight"
        results = await asyncio.gather(first, second, third)
        assert [r.payload.ms for r in results] == [200, 200, 0]


async def test_handoff_over_a_real_socket() -> None:
    """Same over aiohttp: a fast RPC overtakes a waiting one; closing mid-RPC cancels it cleanly."""
    import json

    from websockets.asyncio.client import connect

    router = build()
    async with Server(router, port=0, env={}) as server, connect(server.url) as ws:
        await ws.send(json.dumps({"type": "SLOW", "meta": {"correlationId": "s"}, "payload": {"ms": 300}}))
        await ws.send(json.dumps({"type": "SLOW", "meta": {"correlationId": "f"}, "payload": {"ms": 0}}))
        async with asyncio.timeout(3):
            order = [json.loads(await ws.recv())["meta"]["correlationId"] for _ in range(2)]
        assert order == ["f", "s"]
        await ws.send(json.dumps({"type": "SLOW", "meta": {"correlationId": "x"}, "payload": {"ms": 5000}}))
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    assert router.hub.connections == {}
