"""Client subscriptions recover across instances on a real Redis: a client that subscribed on
instance A, went away and comes back to instance B with its last position receives every
message published meanwhile exactly once and in order, then live ones."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from tests.subscriptions.peers import SocketPeer, subscribe_frame
from websockets.asyncio.client import connect

from wskit import Router, message
from wskit.pubsub.redis import RedisBroker
from wskit.server import Server

__all__: list[str] = []


class Seq(BaseModel):
    n: int


SeqMsg = message("SEQ", Seq)


def _router(max_len: int) -> Router[Any]:
    router: Router[Any] = Router()
    router.allow_subscribe("feed:*")
    router.enable_history("feed:*", max_len=max_len, ttl_s=60)
    return router


def _instance(url: str, namespace: str, max_len: int = 100) -> Server:
    return Server(_router(max_len), host="127.0.0.1", port=0, broker=RedisBroker(url, namespace=namespace))


async def test_resubscribe_on_the_other_instance_loses_nothing(redis_url: str, namespace: str) -> None:
    """Position from A, gap published on B, resubscribe on B: the gap in order, once, then the
    confirmation at the newest position, then live."""
    async with _instance(redis_url, namespace) as a, _instance(redis_url, namespace) as b:
        async with connect(a.url) as ws:
            peer = SocketPeer(ws)
            await peer.send(subscribe_frame("c1", "feed:seq"))
            confirm = await peer.recv()
            epoch = confirm["payload"]["epoch"]
            for n in range(1, 4):
                await b.router.publish("feed:seq", SeqMsg, {"n": n})
            seen = [await peer.recv() for _ in range(3)]
            assert [m["payload"]["n"] for m in seen] == [1, 2, 3]
            assert {m["meta"]["topic"] for m in seen} == {"feed:seq"}
            last = seen[-1]["meta"]
        for n in range(4, 9):  # published while the client is away
            await a.router.publish("feed:seq", SeqMsg, {"n": n})
        async with connect(b.url) as ws:
            peer = SocketPeer(ws)
            await peer.send(subscribe_frame("c2", "feed:seq", offset=last["offset"], epoch=last["epoch"]))
            replay = [await peer.recv() for _ in range(5)]
            assert [m["payload"]["n"] for m in replay] == [4, 5, 6, 7, 8]
            assert [m["meta"]["offset"] for m in replay] == list(range(last["offset"] + 1, last["offset"] + 6))
            done = await peer.recv()
            assert done["type"] == "$ws:subscribed"
            assert done["payload"] == {"topic": "feed:seq", "offset": last["offset"] + 5, "epoch": epoch}
            await a.router.publish("feed:seq", SeqMsg, {"n": 9})
            live = await peer.recv()
            assert (live["payload"]["n"], live["meta"]["offset"]) == (9, last["offset"] + 6)


async def test_gap_beyond_the_history_is_failed_precondition(redis_url: str, namespace: str) -> None:
    """When the history (max_len 3) no longer holds what the client missed, the subscribe is
    refused FAILED_PRECONDITION {reason: recovery}: the client must reload its state."""
    async with _instance(redis_url, namespace, max_len=3) as a:
        await a.router.publish("feed:short", SeqMsg, {"n": 1})
        async with connect(a.url) as ws:
            peer = SocketPeer(ws)
            await peer.send(subscribe_frame("c1", "feed:short"))
            position = (await peer.recv())["payload"]
            await peer.send(json.dumps({"type": "$ws:unsubscribe", "meta": {"correlationId": "c2"},
                                        "payload": {"topic": "feed:short"}}))  # fmt: skip
            assert (await peer.recv())["type"] == "$ws:unsubscribed"
            for n in range(2, 12):
                await a.router.publish("feed:short", SeqMsg, {"n": n})
            await peer.send(subscribe_frame("c3", "feed:short", offset=position["offset"], epoch=position["epoch"]))
            refused = await peer.recv()
        assert (refused["type"], refused["meta"]) == ("RPC_ERROR", {"correlationId": "c3"})
        assert refused["payload"]["code"] == "FAILED_PRECONDITION"
        assert refused["payload"]["details"] == {"reason": "recovery", "topic": "feed:short"}
