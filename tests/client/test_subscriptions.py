"""Client subscriptions: made, tracked, recovered after a reconnect, reset when history is gone."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from tests.client.app import Close, Echo, Heard, Join, Publish, Say, Seen, build_router, serving
from tests.support.redis_server import free_port
from tests.support.waiting import PATIENCE_S, eventually

from wskit import ErrorCode, WsKitError
from wskit.client import Backoff, Client, ClientError, Message
from wskit.client.subscriptions import Positions
from wskit.protocol import Position


class _Ceiling(random.Random):
    """Full jitter drawing its ceiling every time (a draw near 0 would reconnect before the
    test sees ``reconnecting``)."""

    def uniform(self, a: float, b: float) -> float:
        return b


SLOW_BACK = Backoff(initial_delay=0.3, max_delay=0.3, rng=_Ceiling())  # a window to publish in while it is away
FAST = Backoff(initial_delay=0.02, max_delay=0.1)


def texts(got: list[Message[object]]) -> list[str]:
    return [m.payload.text for m in got]  # type: ignore[attr-defined]


def test_positions_drop_what_was_seen_and_follow_new_epochs() -> None:
    """A delivery at or below the last offset of the same epoch is dropped; a new epoch restarts."""
    positions = Positions()
    assert positions.admit({"topic": "t", "offset": 1, "epoch": "a"})
    assert positions.admit({"topic": "t", "offset": 2, "epoch": "a"})
    assert not positions.admit({"topic": "t", "offset": 2, "epoch": "a"})
    assert not positions.admit({"topic": "t", "offset": 1, "epoch": "a"})
    assert positions.admit({"topic": "t", "offset": 1, "epoch": "b"})
    assert positions.admit({"text": "no topic: not tracked"})
    assert positions.view == {"t": Position(1, "b")}


async def test_subscribe_delivers_with_positions() -> None:
    """subscribe() to a history topic: deliveries reach on() handlers and the position follows."""
    got: list[Message[object]] = []
    async with serving(build_router(Seen())) as server, Client(server.url) as client:
        client.on(Heard, got.append)
        sub = await client.subscribe("feed:a")
        for n in range(3):
            await server.router.publish("feed:a", Heard, {"text": str(n)})
        await eventually(lambda: len(got) == 3)
        assert texts(got) == ["0", "1", "2"]
        assert got[0].meta["topic"] == "feed:a"
        assert sub.position is not None and sub.position == client.positions["feed:a"]
        assert sub.position.offset == got[-1].meta["offset"]


async def test_a_topic_the_router_does_not_allow_is_refused() -> None:
    """subscribe() to a topic outside allow_subscribe raises PERMISSION_DENIED and keeps nothing."""
    async with serving(build_router(Seen())) as server, Client(server.url) as client:
        with pytest.raises(ClientError) as caught:
            await client.subscribe("secret:x")
        assert caught.value.code == "PERMISSION_DENIED"
        assert "secret:x" not in client.subscriptions


async def test_unsubscribe_stops_deliveries() -> None:
    """After sub.unsubscribe() (confirmed by the server) publications no longer arrive."""
    got: list[Message[object]] = []
    async with serving(build_router(Seen())) as server, Client(server.url) as client:
        client.on(Heard, got.append)
        sub = await client.subscribe("live:a")
        await server.router.publish("live:a", Heard, {"text": "before"})
        await eventually(lambda: len(got) == 1)
        await sub.unsubscribe()
        await server.router.publish("live:a", Heard, {"text": "after"})
        await client.send(Say, {"text": "marker"})  # HEARD "marker" comes back to this client only
        await eventually(lambda: len(got) == 2)
        assert texts(got) == ["before", "marker"] and client.subscriptions == {}


async def test_missed_messages_are_recovered_once_in_order_after_a_reconnect() -> None:
    """The client is disconnected (1012) while three messages are published: after the reconnect
    it resubscribes from its position and gets each missed message exactly once, in order."""
    got: list[Message[object]] = []
    async with serving(build_router(Seen())) as server:
        client = Client(server.url, backoff=SLOW_BACK)
        client.on(Heard, got.append)
        await client.connect()
        await client.subscribe("feed:r")
        await server.router.publish("feed:r", Heard, {"text": "0"})
        await eventually(lambda: len(got) == 1)
        await client.send(Close, {"code": 1012})
        await eventually(lambda: client.state == "reconnecting")
        for n in (1, 2, 3):
            await server.router.publish("feed:r", Heard, {"text": str(n)})
        await eventually(lambda: client.state == "open")
        await server.router.publish("feed:r", Heard, {"text": "4"})
        await eventually(lambda: len(got) >= 5)
        await asyncio.sleep(0)
        assert texts(got) == ["0", "1", "2", "3", "4"]
        await client.close()


async def test_resubscribe_happens_before_the_offline_queue_is_flushed() -> None:
    """A publish queued while away (a topic without history) comes back to the client: its
    subscription was made again before the queue was sent."""
    got: list[Message[object]] = []
    async with serving(build_router(Seen())) as server:
        client = Client(server.url, backoff=SLOW_BACK)
        client.on(Heard, got.append)
        await client.connect()
        await client.subscribe("live:q")
        await client.send(Close, {"code": 1012})
        await eventually(lambda: client.state == "reconnecting")
        await client.send(Publish, {"topic": "live:q", "text": "queued"})
        await eventually(lambda: texts(got) == ["queued"])
        await client.close()


async def test_lost_history_resets_the_subscription_then_it_continues_live() -> None:
    """The server restarts (its in-memory history is gone): recovery is refused, on_reset gets
    FAILED_PRECONDITION, the client subscribes afresh and live deliveries continue."""
    port = free_port()
    got: list[Message[object]] = []
    resets: list[ClientError] = []
    client = Client(f"ws://127.0.0.1:{port}/", backoff=FAST)
    client.on(Heard, got.append)
    async with serving(build_router(Seen()), port) as server:
        await client.connect()
        sub = await client.subscribe("feed:z")
        sub.on_reset(resets.append)
        await server.router.publish("feed:z", Heard, {"text": "old"})
        await eventually(lambda: len(got) == 1)
        await server.stop()
    async with serving(build_router(Seen()), port) as server:
        await eventually(lambda: client.state == "open", timeout=PATIENCE_S)
        assert [e.code for e in resets] == ["FAILED_PRECONDITION"]
        await server.router.publish("feed:z", Heard, {"text": "new"})
        await eventually(lambda: texts(got) == ["old", "new"])
        assert sub.active and sub.position is not None
    await client.close()


async def test_topics_a_handler_subscribed_the_client_to_are_tracked() -> None:
    """A JOIN handler calls ctx.subscribe on a history topic: client.positions follows it."""
    got: list[Message[object]] = []
    async with serving(build_router(Seen())) as server, Client(server.url) as client:
        client.on(Heard, got.append)
        await client.send(Join, {"topic": "room:1"})
        await client.send(Publish, {"topic": "room:1", "text": "hello"})
        await eventually(lambda: len(got) == 1)
        assert client.positions["room:1"].offset == got[0].meta["offset"]


async def test_a_request_made_inside_on_reset_gets_its_answer() -> None:
    """Reloading state in on_reset (an async callback awaiting a request) works: the callback
    runs once the connection is open, so the request goes out and its answer comes back."""
    port = free_port()
    reloaded: list[str] = []
    failed: list[BaseException] = []
    client = Client(f"ws://127.0.0.1:{port}/", backoff=FAST, resubscribe_timeout=2.0)

    async def reload(error: ClientError) -> None:
        try:
            answer = await client.request(Echo, {"text": "reloaded"}, timeout=2.0)
        except BaseException as exc:
            failed.append(exc)
            raise
        reloaded.append(answer.payload.text)

    async with serving(build_router(Seen()), port) as server:
        await client.connect()
        sub = await client.subscribe("feed:reload")
        sub.on_reset(reload)
        await server.router.publish("feed:reload", Heard, {"text": "old"})
        await eventually(lambda: sub.position is not None)
        await server.stop()
    async with serving(build_router(Seen()), port):
        await eventually(lambda: reloaded == ["reloaded"] or bool(failed), timeout=PATIENCE_S)
        assert failed == [] and reloaded == ["reloaded"]
        assert client.state == "open" and sub.active
    await client.close()


async def test_a_retryable_refusal_on_resubscribe_reconnects_instead_of_dropping() -> None:
    """The server refuses the resubscribe once with RESOURCE_EXHAUSTED (a rate limit, retry
    after 300 ms): the subscription is kept, the client reconnects no sooner than the hint and
    subscribes again; a later publication arrives."""
    got: list[Message[object]] = []
    refusals = [0]
    router = build_router(Seen())

    async def rate_limit(ctx: Any, call_next: Any) -> None:
        if ctx.type == "$ws:subscribe" and refusals[0] > 0:
            refusals[0] -= 1
            refused_at.append(loop.time())
            raise WsKitError(ErrorCode.RESOURCE_EXHAUSTED, "slow down", retry_after_ms=300)
        await call_next()

    router.use(rate_limit)
    loop = asyncio.get_running_loop()
    opens: list[float] = []
    refused_at: list[float] = []
    async with serving(router) as server:
        client = Client(
            server.url, backoff=FAST, on_state=lambda c: opens.append(loop.time()) if c.new == "open" else None
        )
        client.on(Heard, got.append)
        await client.connect()
        sub = await client.subscribe("live:limited")
        refusals[0] = 1
        await client.send(Close, {"code": 1012})
        await eventually(lambda: refusals[0] == 0 and client.state == "open", timeout=PATIENCE_S)
        assert sub.active and "live:limited" in client.subscriptions
        await server.router.publish("live:limited", Heard, {"text": "still here"})
        await eventually(lambda: texts(got) == ["still here"])
        assert client.problems.get("resubscribe-refused", 0) == 0
        assert len(refused_at) == 1 and opens[-1] - refused_at[0] >= 0.3
        await client.close()


async def test_a_connection_lost_during_resubscribe_is_noticed_at_once() -> None:
    """The server closes the connection while answering a resubscribe: the client notices the
    loss at once (not after resubscribe_timeout) and resubscribes on the next connection."""
    got: list[Message[object]] = []
    closes = [0]
    router = build_router(Seen())

    async def closer(ctx: Any, call_next: Any) -> None:
        if ctx.type == "$ws:subscribe" and closes[0] > 0:
            closes[0] -= 1
            await ctx.close(1012, "restarting")
            return
        await call_next()

    router.use(closer)
    async with serving(router) as server:
        client = Client(server.url, backoff=FAST, resubscribe_timeout=30.0)
        client.on(Heard, got.append)
        await client.connect()
        await client.subscribe("live:lost")
        closes[0] = 1
        await client.send(Close, {"code": 1012})
        await eventually(lambda: closes[0] == 0)
        await eventually(lambda: client.state == "open", timeout=3.0)
        await server.router.publish("live:lost", Heard, {"text": "back"})
        await eventually(lambda: texts(got) == ["back"])
        await client.close()


async def test_unsubscribe_during_the_setup_leaves_the_topic_on_the_server_too() -> None:
    """A subscription made again on a new connection is left while that connection is still
    being set up (another resubscribe is slow): the server is told, nothing more arrives."""
    got: list[Message[object]] = []
    router = build_router(Seen())
    slow = asyncio.Event()
    slowing = [False]

    async def delay_b(ctx: Any, call_next: Any) -> None:
        if ctx.type == "$ws:subscribe" and ctx.payload.get("topic") == "live:b" and slowing[0]:
            slowing[0] = False
            slow.set()
            await asyncio.sleep(0.3)
        await call_next()

    router.use(delay_b)
    async with serving(router) as server:
        client = Client(server.url, backoff=FAST)
        client.on(Heard, got.append)
        await client.connect()
        sub_a = await client.subscribe("live:a")
        await client.subscribe("live:b")
        slowing[0] = True
        await client.send(Close, {"code": 1012})
        await asyncio.wait_for(slow.wait(), PATIENCE_S)
        await asyncio.sleep(0.05)  # live:a is back on the server by now
        assert client.state != "open"
        await sub_a.unsubscribe()
        await eventually(lambda: client.state == "open")
        await server.router.publish("live:a", Heard, {"text": "left"})
        await client.send(Say, {"text": "marker"})
        await eventually(lambda: len(got) >= 1)
        await asyncio.sleep(0.05)
        assert texts(got) == ["marker"]
        await client.close()


async def test_subscribe_while_offline_asks_the_server_once() -> None:
    """subscribe() called while reconnecting: the next connection gets one $ws:subscribe for
    the topic (the queued one), not a resubscribe as well."""
    router = build_router(Seen())
    asked: list[str] = []

    async def count(ctx: Any, call_next: Any) -> None:
        if ctx.type == "$ws:subscribe":
            asked.append(ctx.payload.get("topic"))
        await call_next()

    router.use(count)
    async with serving(router) as server:
        client = Client(server.url, backoff=SLOW_BACK)
        await client.connect()
        await client.send(Close, {"code": 1012})
        await eventually(lambda: client.state == "reconnecting")
        sub = await asyncio.wait_for(client.subscribe("live:offline"), PATIENCE_S)
        assert sub.active
        await client.send(Say, {"text": "after"})
        await asyncio.sleep(0.1)
        assert asked == ["live:offline"]
        await client.close()
