"""An RPC in flight, in both ways it runs (the reading task it started in, ``RpcCall.adopt``;
a task of its own, ``RpcCall.start``): cancelled by the client or by its deadline before it
answers, answered before a deadline that has not passed, abandoned when the connection goes
(also RPCs without a correlationId), and held to ``max_inflight_bytes``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, Router, rpc
from wskit.testing import RpcError, TestClient


class Job(BaseModel):
    name: str


class Done(BaseModel):
    name: str


Work = rpc("WORK", Job, "WORKED", Done)


class Jobs:
    """WORK{name} starts (recorded), waits until the test releases that name, then replies.
    ``cancelled`` lists the names whose handler was cancelled."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def router(self, **options: Any) -> Router[Any]:
        router: Router[Any] = Router(**options)

        @router.rpc(Work)
        async def work(ctx: Context[Job]) -> None:
            name = ctx.payload.name
            self.started.append(name)
            try:
                await self.gate(name).wait()
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
            await ctx.reply({"name": name})

        return router


async def until(predicate: Any, what: str) -> None:
    """Wait (bounded: 5 s) until ``predicate()`` holds."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not in time: {what}")


async def settle() -> None:
    """Give queued work every chance to run (for checks that something did NOT happen)."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)


@pytest.fixture(params=["reading-task", "own-task"])
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _connect(jobs: Jobs, path: str, **options: Any) -> TestClient:
    client = TestClient(jobs.router(**options))
    await client.connect()
    if path == "own-task":
        client.connection.spawn_reader = None  # a transport that cannot hand reading on
    return client


@pytest.fixture
async def client(path: str) -> AsyncIterator[tuple[Jobs, TestClient]]:
    jobs = Jobs()
    client = await _connect(jobs, path)
    try:
        yield jobs, client
    finally:
        await asyncio.wait_for(client.close(), 5)


async def test_a_cancel_before_the_reply_answers_cancelled_and_stops_the_handler(
    client: tuple[Jobs, TestClient],
) -> None:
    """$ws:rpc-cancel while the handler waits: RPC_ERROR CANCELLED, and the handler is cancelled."""
    jobs, c = client
    pending = asyncio.ensure_future(c.request(Work, {"name": "a"}, correlation_id="r1"))
    await until(lambda: jobs.started == ["a"], "the handler started")
    await c.cancel("r1")
    with pytest.raises(RpcError) as raised:
        await pending
    assert raised.value.code == "CANCELLED"
    await until(lambda: jobs.cancelled == ["a"], "the handler was cancelled")


async def test_a_deadline_passing_before_the_reply_answers_deadline_exceeded(
    client: tuple[Jobs, TestClient], tick: float
) -> None:
    """timeoutMs of one tick, a handler that never answers: RPC_ERROR DEADLINE_EXCEEDED, and the
    handler is cancelled."""
    jobs, c = client
    with pytest.raises(RpcError) as raised:
        await c.request(Work, {"name": "a"}, meta={"timeoutMs": int(tick * 1000)})
    assert raised.value.code == "DEADLINE_EXCEEDED"
    await until(lambda: jobs.cancelled == ["a"], "the handler was cancelled")


async def test_a_handler_answering_before_its_deadline_is_answered_normally(client: tuple[Jobs, TestClient]) -> None:
    """timeoutMs=5000, the handler waits a moment then replies: its reply arrives, no error."""
    jobs, c = client
    pending = asyncio.ensure_future(c.request(Work, {"name": "a"}, meta={"timeoutMs": 5000}))
    await until(lambda: jobs.started == ["a"], "the handler started")
    await settle()
    jobs.gate("a").set()
    assert (await pending).payload.name == "a"
    assert jobs.cancelled == []


async def test_closing_the_connection_cancels_every_rpc_in_flight(path: str) -> None:
    """Three RPCs waiting, two of them sent without a correlationId: the client goes away, all
    three handlers are cancelled (none is left running for nobody) and none is tracked."""
    jobs = Jobs()
    c = await _connect(jobs, path)
    await c.send(Work.request, {"name": "x"})
    await c.send(Work.request, {"name": "y"})
    pending = asyncio.ensure_future(c.request(Work, {"name": "z"}))
    await until(lambda: sorted(jobs.started) == ["x", "y", "z"], "all three started")
    await asyncio.wait_for(c.close(), 5)
    await until(lambda: sorted(jobs.cancelled) == ["x", "y", "z"], "all three were cancelled")
    assert c.connection.rpcs == {}
    pending.cancel()


async def test_the_inflight_bytes_bound_holds_the_next_rpc_back(path: str) -> None:
    """max_inflight_bytes=1: with one RPC in flight the bound is reached, so the next RPC does not
    start until the first has finished."""
    jobs = Jobs()
    c = await _connect(jobs, path, max_inflight_bytes=1)
    first = asyncio.ensure_future(c.request(Work, {"name": "a"}))
    second = asyncio.ensure_future(c.request(Work, {"name": "b"}))
    try:
        await until(lambda: "a" in jobs.started, "the first started")
        await settle()
        assert jobs.started == ["a"], "the second RPC started past the bound"
        jobs.gate("a").set()
        jobs.gate("b").set()
        assert (await first).payload.name == "a"
        assert (await second).payload.name == "b"
        assert jobs.started == ["a", "b"]
    finally:
        first.cancel()
        second.cancel()
        await asyncio.wait_for(c.close(), 5)
