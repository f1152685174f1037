"""``$ws:subscribe`` / ``$ws:unsubscribe`` (docs/protocol.md), in memory and over every host.

Each behaviour is checked once in memory (fast, exact) and the frames themselves over real
sockets on every way wskit is hosted (serve/aiohttp, picows, uvicorn, hypercorn, the FastAPI
mount), so a host that mangles or drops them fails here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel
from tests.subscriptions.peers import MemoryPeer, Peer, SocketPeer, subscribe_frame
from tests.support.serving import SERVING, serving
from websockets.asyncio.client import connect

from wskit import Context, Router, message
from wskit.errors import UsageError
from wskit.testing import TestClient
from wskit.topics import TopicPolicy

__all__: list[str] = []


class Tick(BaseModel):
    n: int


class Room(BaseModel):
    topic: str


TickMsg = message("TICK", Tick)
Join = message("JOIN", Room)


def build_router(**router_options: Any) -> Router[Any]:
    """Clients may subscribe to ``feed:*``; ``hist:*`` keeps history (and is allowed too);
    ``JOIN`` subscribes the way an application handler does (``ctx.subscribe``)."""
    router: Router[Any] = Router(**router_options)
    router.allow_subscribe("feed:*")
    router.allow_subscribe("hist:*")
    router.enable_history("hist:*")

    @router.on(Join)
    async def join(ctx: Context[Room]) -> None:
        await ctx.subscribe(ctx.payload.topic)

    return router


@pytest.fixture
async def memory() -> AsyncIterator[tuple[Router[Any], MemoryPeer, MemoryPeer]]:
    router = build_router()
    async with TestClient(router) as a, TestClient(router) as b:
        yield router, MemoryPeer(a), MemoryPeer(b)


async def _ask(peer: Peer, frame: dict[str, Any]) -> dict[str, Any]:
    await peer.send(frame)
    return await peer.recv()


def _refused(answer: dict[str, Any], code: str, cid: str | None = "c1") -> dict[str, Any]:
    assert answer["type"] == ("RPC_ERROR" if cid is not None else "ERROR"), answer
    assert answer["meta"] == ({"correlationId": cid} if cid is not None else {})
    assert answer["payload"]["code"] == code, answer
    return dict(answer["payload"])


# -- confirmation and deliveries -----------------------------------------------------------


async def test_subscribe_is_confirmed_and_deliveries_name_the_topic(memory: Any) -> None:
    """A subscribe is confirmed with its correlationId, topic and a null position (no history);
    what is then published to the topic reaches the client with meta.topic."""
    router, a, _ = memory
    answer = await _ask(a, subscribe_frame("c1", "feed:news"))
    assert answer == {
        "type": "$ws:subscribed",
        "meta": {"correlationId": "c1"},
        "payload": {"topic": "feed:news", "offset": None, "epoch": None},
    }
    await router.publish("feed:news", TickMsg, {"n": 1})
    assert await a.recv() == {"type": "TICK", "meta": {"topic": "feed:news"}, "payload": {"n": 1}}


async def test_history_subscribe_confirms_the_current_position(memory: Any) -> None:
    """On a history topic the confirmation carries the topic's position, and deliveries carry
    offset, epoch and topic, the next offset after the confirmed one."""
    router, a, _ = memory
    await router.publish("hist:a", TickMsg, {"n": 1})
    await router.publish("hist:a", TickMsg, {"n": 2})
    answer = await _ask(a, subscribe_frame("c1", "hist:a"))
    position = answer["payload"]
    assert (position["topic"], position["offset"]) == ("hist:a", 2)
    assert isinstance(position["epoch"], str) and position["epoch"]
    await router.publish("hist:a", TickMsg, {"n": 3})
    got = await a.recv()
    assert got["meta"] == {"offset": 3, "epoch": position["epoch"], "topic": "hist:a"}


async def test_subscribe_from_a_position_replays_then_confirms(memory: Any) -> None:
    """With offset+epoch, every message after that offset arrives first, in order, without a
    duplicate, then the confirmation at the newest position, then live messages."""
    router, a, b = memory
    first = await _ask(a, subscribe_frame("c1", "hist:r"))
    epoch = first["payload"]["epoch"]
    for n in range(1, 5):
        await router.publish("hist:r", TickMsg, {"n": n})
    seen = [await a.recv() for _ in range(4)]
    last = seen[1]["meta"]["offset"]  # b saw up to n=2
    await b.send(subscribe_frame("c2", "hist:r", offset=last, epoch=epoch))
    replay = [await b.recv() for _ in range(2)]
    assert [m["payload"]["n"] for m in replay] == [3, 4]
    assert [m["meta"]["offset"] for m in replay] == [last + 1, last + 2]
    done = await b.recv()
    assert done["type"] == "$ws:subscribed"
    assert done["payload"] == {"topic": "hist:r", "offset": last + 2, "epoch": epoch}
    await router.publish("hist:r", TickMsg, {"n": 5})
    live = await b.recv()
    assert (live["payload"]["n"], live["meta"]["offset"]) == (5, last + 3)


async def test_recovery_from_another_epoch_is_failed_precondition(memory: Any) -> None:
    """A position in an epoch the history no longer has is refused FAILED_PRECONDITION with
    details.reason "recovery" (the client reloads), and the client is left out of the topic."""
    router, a, _ = memory
    await router.publish("hist:x", TickMsg, {"n": 1})
    answer = await _ask(a, subscribe_frame("c1", "hist:x", offset=0, epoch="not-ours"))
    payload = _refused(answer, "FAILED_PRECONDITION")
    assert payload["details"] == {"reason": "recovery", "topic": "hist:x"}
    await router.publish("hist:x", TickMsg, {"n": 2})
    confirm = await _ask(a, subscribe_frame("c2", "hist:x"))
    assert confirm["type"] == "$ws:subscribed"  # nothing of n=2 came before: it was not a member


async def test_unsubscribe_stops_deliveries_and_is_idempotent(memory: Any) -> None:
    """``$ws:unsubscribe`` is confirmed, nothing published afterwards arrives, and leaving a
    topic the client is not in is confirmed the same way."""
    router, a, _ = memory
    await _ask(a, subscribe_frame("c1", "feed:x"))
    leave = {"type": "$ws:unsubscribe", "meta": {"correlationId": "c2"}, "payload": {"topic": "feed:x"}}
    expected = {"type": "$ws:unsubscribed", "meta": {"correlationId": "c2"}, "payload": {"topic": "feed:x"}}
    assert await _ask(a, leave) == expected
    await router.publish("feed:x", TickMsg, {"n": 1})
    assert await _ask(a, leave) == expected  # the publish did not arrive in between


async def test_handler_subscription_of_a_wskit_client_stays_bare(memory: Any) -> None:
    """A topic without history joined by an application handler is delivered exactly as WS-Kit
    delivers it (no meta key: WS-Kit's client validates meta strictly), while a member that
    subscribed itself gets meta.topic from the same publish, serialised once."""
    router, a, b = memory
    await a.send({"type": "JOIN", "payload": {"topic": "feed:mixed"}})
    await _ask(b, subscribe_frame("c1", "feed:mixed"))
    codec = router.runtime.codec
    before = codec.encodes["TICK"]
    await router.publish("feed:mixed", TickMsg, {"n": 7})
    await a.recv()
    assert a.raw == b'{"type":"TICK","payload":{"n":7}}'
    await b.recv()
    assert b.raw == b'{"type":"TICK","meta":{"topic":"feed:mixed"},"payload":{"n":7}}'
    assert codec.encodes["TICK"] - before == 1


async def test_history_deliveries_name_the_topic_for_handler_subscriptions(memory: Any) -> None:
    """On a history topic joined by a handler, deliveries carry topic with offset and epoch:
    the client can track its position per topic and rejoin from it."""
    router, a, _ = memory
    await a.send({"type": "JOIN", "payload": {"topic": "hist:j"}})
    await router.publish("hist:j", TickMsg, {"n": 1})
    got = await a.recv()
    assert got["meta"]["topic"] == "hist:j" and got["meta"]["offset"] == 1


# -- refusals ------------------------------------------------------------------------------


async def test_topic_not_allowed_is_permission_denied(memory: Any) -> None:
    """A topic no allow_subscribe pattern matches is refused PERMISSION_DENIED."""
    _, a, _ = memory
    _refused(await _ask(a, subscribe_frame("c1", "secret:x")), "PERMISSION_DENIED")


async def test_without_allow_subscribe_everything_is_refused() -> None:
    """A router that never called allow_subscribe refuses every client subscription."""
    async with TestClient(Router()) as client:
        peer = MemoryPeer(client)
        _refused(await _ask(peer, subscribe_frame("c1", "feed:news")), "PERMISSION_DENIED")


async def test_unsubscribe_from_a_topic_not_allowed_is_permission_denied(memory: Any) -> None:
    """Clients may only leave topics they may join: a handler's subscription elsewhere stays."""
    router, a, _ = memory
    await a.send({"type": "JOIN", "payload": {"topic": "private:1"}})
    leave = {"type": "$ws:unsubscribe", "meta": {"correlationId": "c1"}, "payload": {"topic": "private:1"}}
    _refused(await _ask(a, leave), "PERMISSION_DENIED")
    await router.publish("private:1", TickMsg, {"n": 1})
    assert (await a.recv())["payload"] == {"n": 1}


async def test_authorize_is_asked_and_can_refuse() -> None:
    """The topic policy's authorize decides each allowed subscribe (PERMISSION_DENIED)."""
    asked: list[tuple[str, str]] = []

    def authorize(ctx: Context[Any, Any], topic: str, action: str) -> bool:
        asked.append((topic, action))
        return topic != "feed:vip"

    router = Router(topic_policy=TopicPolicy(authorize=authorize))
    router.allow_subscribe("feed:*")
    async with TestClient(router) as client:
        peer = MemoryPeer(client)
        _refused(await _ask(peer, subscribe_frame("c1", "feed:vip")), "PERMISSION_DENIED")
        assert (await _ask(peer, subscribe_frame("c2", "feed:ok")))["type"] == "$ws:subscribed"
    assert asked == [("feed:vip", "subscribe"), ("feed:ok", "subscribe")]


async def test_over_the_topic_limit_is_resource_exhausted() -> None:
    """Past the policy's max_topics_per_connection a subscribe is RESOURCE_EXHAUSTED."""
    router = Router(topic_policy=TopicPolicy(max_topics_per_connection=2))
    router.allow_subscribe("feed:*")
    async with TestClient(router) as client:
        peer = MemoryPeer(client)
        for n in range(2):
            assert (await _ask(peer, subscribe_frame(f"c{n}", f"feed:{n}")))["type"] == "$ws:subscribed"
        _refused(await _ask(peer, subscribe_frame("c1", "feed:2")), "RESOURCE_EXHAUSTED")
        # the same topic again is not a new one
        assert (await _ask(peer, subscribe_frame("c3", "feed:1")))["type"] == "$ws:subscribed"


BAD_PAYLOADS = [
    pytest.param(None, id="no-payload"),
    pytest.param({}, id="no-topic"),
    pytest.param({"topic": 5}, id="topic-not-a-string"),
    pytest.param({"topic": "bad topic!"}, id="bad-name"),
    pytest.param({"topic": "feed:" + "x" * 200}, id="name-too-long"),
    pytest.param({"topic": "feed:a", "extra": 1}, id="unknown-key"),
    pytest.param({"topic": "hist:a", "offset": 3}, id="offset-without-epoch"),
    pytest.param({"topic": "hist:a", "epoch": "e"}, id="epoch-without-offset"),
    pytest.param({"topic": "hist:a", "offset": "3", "epoch": "e"}, id="offset-a-string"),
    pytest.param({"topic": "hist:a", "offset": True, "epoch": "e"}, id="offset-a-bool"),
    pytest.param({"topic": "hist:a", "offset": -1, "epoch": "e"}, id="offset-negative"),
    pytest.param({"topic": "hist:a", "offset": 1, "epoch": "e" * 500}, id="epoch-too-long"),
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS)
async def test_bad_payload_is_invalid_argument(memory: Any, payload: Any) -> None:
    """Every malformed subscribe payload is INVALID_ARGUMENT to its correlationId, in a small
    answer, and the connection goes on working."""
    _, a, _ = memory
    frame: dict[str, Any] = {"type": "$ws:subscribe", "meta": {"correlationId": "c1"}}
    if payload is not None:
        frame["payload"] = payload
    await a.send(frame)
    _refused(await a.recv(), "INVALID_ARGUMENT")
    assert len(a.raw) < 1024
    assert (await _ask(a, subscribe_frame("c2", "feed:ok")))["type"] == "$ws:subscribed"


@pytest.mark.parametrize(
    "meta",
    [pytest.param({}, id="none"), pytest.param({"correlationId": 7}, id="number"), pytest.param(None, id="null")],
)
async def test_without_a_string_correlation_id_is_error_invalid_argument(memory: Any, meta: Any) -> None:
    """No correlationId to answer to (missing, or not a string): ERROR INVALID_ARGUMENT."""
    _, a, _ = memory
    frame: dict[str, Any] = {"type": "$ws:subscribe", "payload": {"topic": "feed:a"}}
    if meta is not None:
        frame["meta"] = meta
    await a.send(frame)
    _refused(await a.recv(), "INVALID_ARGUMENT", cid=None)


async def test_unknown_meta_key_is_invalid_argument(memory: Any) -> None:
    """Inbound meta is strict for these frames as for any message."""
    _, a, _ = memory
    frame = subscribe_frame("c1", "feed:a")
    frame["meta"]["clientId"] = "spoofed"
    _refused(await _ask(a, frame), "INVALID_ARGUMENT")


def test_allow_subscribe_takes_a_pattern() -> None:
    """A pattern that is not a non-empty string is a UsageError at declaration."""
    router: Router[Any] = Router()
    for bad in ("", None, 3):
        with pytest.raises(UsageError):
            router.allow_subscribe(bad)  # type: ignore[arg-type]


def test_allowances_survive_include_and_copy() -> None:
    """include() and copy() carry allow_subscribe patterns (composition, the JWT copy)."""
    inner: Router[Any] = Router()
    inner.allow_subscribe("feed:*")
    outer: Router[Any] = Router()
    outer.include(inner)
    assert outer.allows_subscribe("feed:x") and not outer.allows_subscribe("room:x")
    assert outer.copy().allows_subscribe("feed:x")


def test_allow_subscribe_uses_the_history_glob() -> None:
    """The same glob matching as enable_history: ``*`` spans ':' and matching is case-sensitive."""
    router: Router[Any] = Router()
    router.allow_subscribe("a:*")
    history = router.enable_history("a:*")
    for topic in ("a:b", "a:b:c", "A:b", "a", "xa:b"):
        assert router.allows_subscribe(topic) is history.matches(topic), topic


# -- every host ----------------------------------------------------------------------------


@pytest.mark.parametrize("way", SERVING)
async def test_frames_over_every_host(way: str) -> None:
    """Over a real socket on each host: confirmation, a refusal, deliveries with meta.topic to a
    client subscriber and bare ones to a handler's subscriber, and the unsubscribe answer."""
    router = build_router()
    async with serving(router, way) as server, connect(server.url) as ws_a, connect(server.url) as ws_b:
        a, b = SocketPeer(ws_a), SocketPeer(ws_b)
        confirm = await _ask(a, subscribe_frame("c1", "feed:live"))
        assert confirm["payload"] == {"topic": "feed:live", "offset": None, "epoch": None}
        _refused(await _ask(a, subscribe_frame("c1", "nope:x")), "PERMISSION_DENIED")
        await b.send(json.dumps({"type": "JOIN", "payload": {"topic": "feed:live"}}))
        # b's JOIN is handled before its next frame: a subscribe of its own proves it ran
        assert (await _ask(b, subscribe_frame("c9", "feed:other")))["type"] == "$ws:subscribed"
        await router.publish("feed:live", TickMsg, {"n": 1})
        assert await a.recv() == {"type": "TICK", "meta": {"topic": "feed:live"}, "payload": {"n": 1}}
        await b.recv()
        assert b.raw == b'{"type":"TICK","payload":{"n":1}}'
        leave = {"type": "$ws:unsubscribe", "meta": {"correlationId": "c2"}, "payload": {"topic": "feed:live"}}
        assert (await _ask(a, leave))["type"] == "$ws:unsubscribed"


# -- subscribing again to a topic the client is in -----------------------------------------


async def test_subscribe_again_from_a_position_does_not_replay(memory: Any) -> None:
    """A member that subscribes again from offset 0 is confirmed with its current position and
    nothing is replayed (one frame must not buy the whole history each time)."""
    router, a, _ = memory
    first = await _ask(a, subscribe_frame("c1", "hist:again"))
    epoch = first["payload"]["epoch"]
    for n in range(1, 4):
        await router.publish("hist:again", TickMsg, {"n": n})
    assert [(await a.recv())["payload"]["n"] for _ in range(3)] == [1, 2, 3]
    for cid in ("c2", "c3"):
        answer = await _ask(a, subscribe_frame(cid, "hist:again", offset=0, epoch=epoch))
        assert answer == {
            "type": "$ws:subscribed",
            "meta": {"correlationId": cid},
            "payload": {"topic": "hist:again", "offset": 3, "epoch": epoch},
        }


async def test_failed_recovery_of_a_member_keeps_its_membership(memory: Any) -> None:
    """A member (joined by a handler) that subscribes with a position the history cannot serve
    is confirmed with its current position and stays in the topic: deliveries go on."""
    router, a, _ = memory
    await a.send({"type": "JOIN", "payload": {"topic": "hist:kept"}})
    await router.publish("hist:kept", TickMsg, {"n": 1})
    got = await a.recv()
    answer = await _ask(a, subscribe_frame("c1", "hist:kept", offset=0, epoch="not-ours"))
    assert answer["type"] == "$ws:subscribed", answer
    assert answer["payload"] == {"topic": "hist:kept", "offset": 1, "epoch": got["meta"]["epoch"]}
    await router.publish("hist:kept", TickMsg, {"n": 2})
    live = await a.recv()
    assert (live["payload"]["n"], live["meta"]["offset"]) == (2, 2)
