"""PROTOCOL.md, "Topics" (wskit history): offsets and epochs on deliveries, and gap-free recovery."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from tests.protocol.wire import ANY_INT, ANY_STR, Endpoint, Peer, Wire, assert_usable, build_app, error, recv, send_json
from tests.support.redis_server import redis_url_for_tests

from wskit import Context, message
from wskit.runtime import Runtime


class Resume(BaseModel):
    topic: str
    offset: int | None = None
    epoch: str | None = None


class Topic(BaseModel):
    topic: str


class Post(BaseModel):
    topic: str
    text: str


Subscribe = message("SUBSCRIBE", Resume)
Subscribed = message("SUBSCRIBED", Topic)
Publish = message("PUBLISH", Post)
Posted = message("POSTED", Post)


def history_router() -> Any:
    app = build_app()
    router = app.router
    router.enable_history("hist:*", max_len=3)

    @router.on(Subscribe)
    async def subscribe(ctx: Context[Resume]) -> None:
        p = ctx.payload
        await ctx.subscribe(p.topic, offset=p.offset, epoch=p.epoch)
        await ctx.send(Subscribed, {"topic": p.topic})

    @router.on(Publish)
    async def publish(ctx: Context[Post]) -> None:
        await ctx.publish(ctx.payload.topic, Posted, ctx.payload)

    return router


async def _serve(wire: Wire) -> Endpoint:
    return await wire.serve(history_router())


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """Our own redis-server for this module (or REDIS_URL; skipped, or failed under CI, without either)."""
    yield from redis_url_for_tests()


async def _serve_on(wire: Wire, broker: str, request: pytest.FixtureRequest) -> Endpoint:
    """The history app on the memory broker, or on a Redis broker of its own namespace."""
    router = history_router()
    if broker == "memory":
        return await wire.serve(router)
    from wskit.pubsub.redis import RedisBroker

    redis = RedisBroker(request.getfixturevalue("redis_url"), namespace=f"wskit-test-{uuid.uuid4().hex[:10]}")
    wire.stack.push_async_callback(redis.close)
    router.attach(Runtime(router, broker=redis))  # what the in-memory transport serves
    return await wire.serve(router, broker=redis)


async def _subscribe(peer: Peer, topic: str, **position: Any) -> None:
    await send_json(peer, {"type": "SUBSCRIBE", "payload": {"topic": topic, **position}})
    assert await recv(peer) == {"type": "SUBSCRIBED", "meta": {}, "payload": {"topic": topic}}


async def _publish(peer: Peer, topic: str, text: str) -> None:
    await send_json(peer, {"type": "PUBLISH", "payload": {"topic": topic, "text": text}})


async def test_history_delivery_carries_offset_and_epoch(wire: Wire) -> None:
    """On a topic with history, each delivery carries meta {offset: int, epoch: str, topic} and nothing else
    (the topic, so a client can keep its position per topic whoever subscribed it)."""
    endpoint = await _serve(wire)
    reader, writer = await endpoint.connect(), await endpoint.connect()
    await _subscribe(reader, "hist:a")
    await _publish(writer, "hist:a", "one")
    got = await recv(reader)
    assert got == {
        "type": "POSTED",
        "meta": {"offset": ANY_INT, "epoch": ANY_STR, "topic": "hist:a"},
        "payload": {"topic": "hist:a", "text": "one"},
    }
    assert list(got) == ["type", "meta", "payload"]


async def test_history_offsets_increase(wire: Wire) -> None:
    """Offsets increase with each publication on the topic, within one epoch."""
    endpoint = await _serve(wire)
    reader, writer = await endpoint.connect(), await endpoint.connect()
    await _subscribe(reader, "hist:b")
    for text in ("1", "2", "3"):
        await _publish(writer, "hist:b", text)
    metas = [(await recv(reader))["meta"] for _ in range(3)]
    offsets = [m["offset"] for m in metas]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == 3
    assert len({m["epoch"] for m in metas}) == 1


async def test_resubscribe_recovers_missed_messages_in_order(wire: Wire) -> None:
    """Re-subscribing with the last {offset, epoch} seen delivers every missed message in order, then live ones,
    with no gap and no duplicate."""
    endpoint = await _serve(wire)
    first, writer = await endpoint.connect(), await endpoint.connect()
    await _subscribe(first, "hist:c")
    await _publish(writer, "hist:c", "seen")
    last = (await recv(first))["meta"]
    await first.close()
    await _publish(writer, "hist:c", "missed-1")
    await _publish(writer, "hist:c", "missed-2")
    await assert_usable(writer)
    again = await endpoint.connect()
    await send_json(
        again, {"type": "SUBSCRIBE", "payload": {"topic": "hist:c", "offset": last["offset"], "epoch": last["epoch"]}}
    )
    got = [await recv(again) for _ in range(3)]
    texts = [m["payload"]["text"] for m in got if m["type"] == "POSTED"]
    assert texts == ["missed-1", "missed-2"]
    assert [m["type"] for m in got].count("SUBSCRIBED") == 1
    await _publish(writer, "hist:c", "live")
    live = await recv(again)
    assert live["payload"]["text"] == "live"
    await assert_usable(again)


async def test_recovery_beyond_history_is_failed_precondition(wire: Wire) -> None:
    """Re-subscribing from a position the history no longer covers answers FAILED_PRECONDITION {reason: recovery}."""
    endpoint = await _serve(wire)
    peer = await endpoint.connect()
    await send_json(peer, {"type": "SUBSCRIBE", "payload": {"topic": "hist:d", "offset": 5, "epoch": "no-such-epoch"}})
    got = await recv(peer)
    assert got == error("FAILED_PRECONDITION", details=got["payload"].get("details"))
    assert got["payload"]["details"]["reason"] == "recovery"
    await assert_usable(peer)


@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_recovery_after_the_history_was_trimmed_is_failed_precondition(
    wire: Wire, broker: str, request: pytest.FixtureRequest
) -> None:
    """More messages than max_len (3) published after the client's last offset: re-subscribing from it
    answers FAILED_PRECONDITION {reason: recovery, topic}; from a position still kept it recovers."""
    endpoint = await _serve_on(wire, broker, request)
    first, writer = await endpoint.connect(), await endpoint.connect()
    await _subscribe(first, "hist:t")
    await _publish(writer, "hist:t", "seen")
    last = (await recv(first))["meta"]
    await first.close()
    for n in range(5):
        await _publish(writer, "hist:t", f"missed-{n}")
    await assert_usable(writer)
    again = await endpoint.connect()
    resume = {"topic": "hist:t", "offset": last["offset"], "epoch": last["epoch"]}
    await send_json(again, {"type": "SUBSCRIBE", "payload": resume})
    got = await recv(again)
    assert got == error("FAILED_PRECONDITION", details={"reason": "recovery", "topic": "hist:t"})
    await assert_usable(again)
    kept = {**resume, "offset": last["offset"] + 3}  # offsets 5 and 6 are still in the history
    await _subscribe_expecting(again, kept, ["missed-3", "missed-4"])


async def _subscribe_expecting(peer: Peer, resume: dict[str, Any], texts: list[str]) -> None:
    await send_json(peer, {"type": "SUBSCRIBE", "payload": resume})
    got = [await recv(peer) for _ in range(len(texts) + 1)]
    assert [m["payload"]["text"] for m in got if m["type"] == "POSTED"] == texts
    assert got[-1]["type"] == "SUBSCRIBED"
