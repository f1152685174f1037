"""An RPC's cancel and deadline end at its answer: after the reply they touch nothing.

A handler may reply first and go on working (write an audit row, warm a cache). A
``$ws:rpc-cancel`` or the ``meta.timeoutMs`` deadline arriving after the reply must neither
cancel that work nor send anything; and once the RPC is over its deadline timer must not
stay armed (with a long ``timeoutMs`` it would hold the call's context for up to a day).

Each behaviour is checked in both ways an RPC runs: in the reading task it started in (the
in-memory and aiohttp transports hand reading on to a new task, ``RpcCall.adopt``), and in a
task of its own (a transport that cannot hand reading on, ``RpcCall.start``).
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, Router, rpc
from wskit.testing import TestClient


class Job(BaseModel):
    name: str


class Done(BaseModel):
    ok: bool


Work = rpc("WORK", Job, "WORKED", Done)
Ping = rpc("PING", Job, "PONG", Done)


class Handler:
    """WORK replies at once, then waits for ``go`` (or for its deadline to pass) and then
    finishes its remaining work (``finished`` is set; ``cancelled`` if it was cancelled)."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.finished = asyncio.Event()
        self.cancelled = False
        self.wait_for_deadline = False
        self.payloads: list[weakref.ref[Job]] = []

    def router(self) -> Router[Any]:
        router: Router[Any] = Router()

        @router.rpc(Work)
        async def work(ctx: Context[Job]) -> None:
            self.payloads.append(weakref.ref(ctx.payload))
            await ctx.reply({"ok": True})
            try:
                if self.wait_for_deadline:
                    remaining = ctx.time_remaining()
                    assert remaining is not None
                    # past the deadline: its timer (due earlier) has run by the time this wakes
                    await asyncio.sleep(max(remaining, 0.0) + 0.01)
                else:
                    await self.go.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
            self.finished.set()

        @router.rpc(Ping)
        async def ping(ctx: Context[Job]) -> None:
            await ctx.reply({"ok": True})

        return router


@pytest.fixture(params=["reading-task", "own-task"])
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Handler, TestClient]]:
    """A connected client; ``own-task``: the connection cannot hand reading on, so each RPC
    runs in a task of its own."""
    handler = Handler()
    client = TestClient(handler.router())
    await client.connect()
    if request.param == "own-task":
        client.connection.spawn_reader = None
    try:
        yield handler, client
    finally:
        # bounded: a broken RPC path (a mutant) must fail the test, not hang its teardown
        await asyncio.wait_for(client.close(), 5)


async def _rpc_over(client: TestClient) -> None:
    """Wait (bounded: 5 s) until no RPC is in flight on the connection."""
    for _ in range(500):
        if not client.connection.rpcs:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"RPCs still in flight: {list(client.connection.rpcs)}")


async def test_cancel_after_the_reply_does_not_cancel_the_remaining_work(setup: tuple[Handler, TestClient]) -> None:
    """WORK replies; the client then cancels it: the handler still finishes, nothing more is sent."""
    handler, client = setup
    await client.request(Work, {"name": "a"}, correlation_id="w1")
    await client.cancel("w1")
    await client.request(Ping, {"name": "p"})  # answered after the cancel was handled
    handler.go.set()
    async with asyncio.timeout(5):
        await handler.finished.wait()
    assert not handler.cancelled
    await _rpc_over(client)
    assert await client.receive_pending() is None


async def test_deadline_after_the_reply_does_not_cancel_the_remaining_work(
    setup: tuple[Handler, TestClient], tick: float
) -> None:
    """WORK (timeoutMs one tick) replies at once and works past its deadline: it finishes, and
    no DEADLINE_EXCEEDED follows the reply."""
    handler, client = setup
    handler.wait_for_deadline = True
    await client.request(Work, {"name": "a"}, meta={"timeoutMs": int(tick * 1000)})
    async with asyncio.timeout(5):
        await handler.finished.wait()
    assert not handler.cancelled
    await _rpc_over(client)
    assert await client.receive_pending() is None


async def test_the_deadline_timer_is_released_when_the_rpc_ends(setup: tuple[Handler, TestClient]) -> None:
    """WORK with a day-long timeoutMs ends: its context (seen through its payload) is freed,
    not held by a timer still armed for tomorrow."""
    handler, client = setup
    await client.request(Work, {"name": "a"}, meta={"timeoutMs": 86_400_000})
    handler.go.set()
    async with asyncio.timeout(5):
        await handler.finished.wait()
    await _rpc_over(client)
    for _ in range(3):
        await asyncio.sleep(0)  # let the finished task's callbacks run and its frames go
    gc.collect()
    assert handler.payloads[0]() is None
