"""Inbound memory per connection is bounded by bytes, not only by the count of RPCs.

Found by a hostile tester: 8 connections x 64 in-flight RPCs of near-MAX_PAYLOAD_BYTES each
(the correlationId alone a MiB) took the server from 52 to 785 MiB: per connection, 64 times
the largest frame. Now the RPCs in flight on one connection hold at most
``Router(max_inflight_bytes=...)`` (4 MiB) of frames, plus the one that crossed the line, and
reading pauses until one finishes (backpressure: nothing is refused).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import BaseModel
from tests.production.conftest import ws_client

from wskit import Context, Router, Server, rpc

FRAME = 1_000_000


class Blob(BaseModel):
    data: str


def _blocking_router(started: list[int], release: asyncio.Event, **options: Any) -> Router[Any]:
    hold = rpc("HOLD", Blob, "HELD", Blob)
    router: Router[Any] = Router(**options)

    @router.rpc(hold)
    async def held(ctx: Context[Blob]) -> None:
        started.append(len(ctx.payload.data))
        await release.wait()
        await ctx.reply({"data": ""})

    return router


async def _eventually(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - bounded by the timeout
            await asyncio.sleep(0.01)


async def _settle(started: list[int], expected: int) -> None:
    """Wait until ``expected`` handlers run, then a little more to see no further one starts."""
    await _eventually(lambda: len(started) >= expected)
    await asyncio.sleep(0.3)


async def test_rpcs_in_flight_hold_a_bounded_number_of_bytes(make_server: Any) -> None:
    """Ten 1 MB RPCs that never finish: five run (4 MiB budget crossed by the fifth), the rest
    wait unread; finishing them lets the others in, and all ten are answered."""
    started: list[int] = []
    release = asyncio.Event()
    server: Server = await make_server(router=_blocking_router(started, release))
    async with ws_client(server.url, max_size=None) as ws:
        body = "x" * (FRAME - 100)
        for i in range(10):
            await ws.send(json.dumps({"type": "HOLD", "meta": {"correlationId": f"c{i}"}, "payload": {"data": body}}))
        await _settle(started, 5)
        assert len(started) == 5
        (conn,) = server.router.hub.connections.values()
        assert len(conn.rpcs) == 5
        release.set()
        answers = []
        async with asyncio.timeout(20):
            while len(answers) < 10:
                answers.append(json.loads(await ws.recv()))
        assert sorted(a["meta"]["correlationId"] for a in answers) == sorted(f"c{i}" for i in range(10))
        assert {a["type"] for a in answers} == {"HELD"}


async def test_small_rpcs_still_reach_the_count_bound(make_server: Any) -> None:
    """Small RPCs are bounded by max_inflight_rpcs as before (the byte budget does not bite)."""
    started: list[int] = []
    release = asyncio.Event()
    server: Server = await make_server(router=_blocking_router(started, release, max_inflight_rpcs=8))
    async with ws_client(server.url) as ws:
        for i in range(12):
            await ws.send(json.dumps({"type": "HOLD", "meta": {"correlationId": f"c{i}"}, "payload": {"data": "x"}}))
        await _settle(started, 8)
        assert len(started) == 8
        release.set()


async def test_one_rpc_larger_than_the_budget_still_runs(make_server: Any) -> None:
    """A budget below one frame never deadlocks: an RPC may always start when none is running."""
    started: list[int] = []
    release = asyncio.Event()
    server: Server = await make_server(router=_blocking_router(started, release, max_inflight_bytes=1000))
    async with ws_client(server.url, max_size=None) as ws:
        for i in range(3):
            await ws.send(
                json.dumps({"type": "HOLD", "meta": {"correlationId": f"c{i}"}, "payload": {"data": "y" * 5000}})
            )
        await _settle(started, 1)
        assert len(started) == 1
        release.set()
        async with asyncio.timeout(10):
            for _ in range(3):
                assert json.loads(await ws.recv())["type"] == "HELD"
        assert len(started) == 3
