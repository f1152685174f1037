"""PROTOCOL.md, "Topics" and the envelope rule for pub/sub deliveries."""

from __future__ import annotations

import pytest
from tests.protocol.wire import Peer, assert_usable, error, recv, send_json


async def _join(peer: Peer, room: str = "lobby") -> None:
    await send_json(peer, {"type": "JOIN", "meta": {}, "payload": {"room": room}})
    assert await recv(peer) == {"type": "JOINED", "meta": {}, "payload": {"room": room}}


def _delivery(text: str, room: str = "lobby") -> dict[str, object]:
    return {"type": "ROOM_MSG", "payload": {"room": room, "text": text}}


async def test_delivery_has_no_meta_key(peer: Peer, other: Peer) -> None:
    """A pub/sub delivery carries no meta key at all (type, payload only)."""
    await _join(peer)
    await _join(other)
    await send_json(peer, {"type": "SAY", "meta": {"timestamp": 1}, "payload": {"room": "lobby", "text": "hi all"}})
    got = await recv(other)
    assert list(got) == ["type", "payload"]
    assert got == _delivery("hi all")


async def test_publish_includes_the_sender_by_default(peer: Peer, other: Peer) -> None:
    """Publishing delivers to every subscriber, the sender included."""
    await _join(peer)
    await _join(other)
    await send_json(peer, {"type": "SAY", "meta": {}, "payload": {"room": "lobby", "text": "hi"}})
    assert await recv(other) == _delivery("hi")
    assert await recv(peer) == _delivery("hi")


async def test_exclude_self_skips_the_sender(peer: Peer, other: Peer) -> None:
    """Publishing with exclude_self=True delivers to the others but not to the sender."""
    await _join(peer)
    await _join(other)
    await send_json(peer, {"type": "SAY_OTHERS", "meta": {}, "payload": {"room": "lobby", "text": "only other"}})
    assert await recv(other) == _delivery("only other")
    await assert_usable(peer)  # the next frame the sender gets is its probe answer, not the delivery


async def test_unsubscribed_connection_gets_nothing(peer: Peer, other: Peer) -> None:
    """After unsubscribing, a connection no longer receives the topic's publications."""
    await _join(peer)
    await _join(other)
    await send_json(other, {"type": "LEAVE", "meta": {}, "payload": {"room": "lobby"}})
    assert await recv(other) == {"type": "LEFT", "meta": {}, "payload": {"room": "lobby"}}
    await send_json(peer, {"type": "SAY", "meta": {}, "payload": {"room": "lobby", "text": "B left"}})
    assert await recv(peer) == _delivery("B left")
    await assert_usable(other)


async def test_publish_to_topic_without_subscribers_sends_nothing(peer: Peer) -> None:
    """Publishing to a topic nobody subscribed to sends no frame (not even to the sender)."""
    await send_json(peer, {"type": "SAY", "meta": {}, "payload": {"room": "empty-room", "text": "nobody"}})
    await assert_usable(peer)


async def test_non_subscriber_gets_nothing(peer: Peer, other: Peer) -> None:
    """A connection that did not subscribe does not receive the topic's publications."""
    await _join(peer)
    await send_json(peer, {"type": "SAY", "meta": {}, "payload": {"room": "lobby", "text": "x"}})
    assert await recv(peer) == _delivery("x")
    await assert_usable(other)


async def test_each_subscriber_gets_a_publication_once(peer: Peer, other: Peer) -> None:
    """Subscribing twice to the same topic still delivers each publication once."""
    await _join(peer)
    await _join(peer)
    await send_json(other, {"type": "SAY", "meta": {}, "payload": {"room": "lobby", "text": "once"}})
    assert await recv(peer) == _delivery("once")
    await assert_usable(peer)


@pytest.mark.parametrize("room", ["has space", "", "x" * 129, "bad#char"])
async def test_invalid_topic_name_is_invalid_argument(peer: Peer, room: str) -> None:
    """Topic names must match ^[A-Za-z0-9:_./-]{1,128}$; others are refused with INVALID_ARGUMENT."""
    await send_json(peer, {"type": "JOIN", "meta": {}, "payload": {"room": room}})
    got = await recv(peer)
    assert got == error("INVALID_ARGUMENT", details=got["payload"].get("details"))
    await assert_usable(peer)


@pytest.mark.parametrize("room", ["room:1", "a.b/c-d_e", "x" * 128])
async def test_valid_topic_names_are_accepted(peer: Peer, room: str) -> None:
    """Names made of letters, digits and : _ . / - up to 128 characters are accepted."""
    await _join(peer, room)
