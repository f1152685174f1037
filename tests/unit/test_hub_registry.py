"""The hub as a registry: connections by id and by user, topic membership and the broker
subscriptions it drives, presence (and its announcements), per-user delivery and closing,
and switching brokers. Unit tests on fake sockets and a recording broker."""

from __future__ import annotations

import json
from typing import Any

from wskit.connection import Connection
from wskit.hub import Hub
from wskit.protocol import Position
from wskit.pubsub.broker import HistoryPolicy, Member, Publication
from wskit.pubsub.memory import MemoryBroker

HISTORY = HistoryPolicy("h:*", max_len=10, ttl_s=60)


class Socket:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send_frame(self, data: bytes) -> None:
        self.frames.append(data)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class RecordingBroker(MemoryBroker):
    """A memory broker that records what the hub asks of it (and can fail presence)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, ...]] = []
        self.fail_presence = False

    async def start(self, listener: Any) -> None:
        self.calls.append(("start",))
        await super().start(listener)

    async def subscribe(self, topic: str, history: HistoryPolicy | None = None) -> None:
        self.calls.append(("subscribe", topic, history))

    async def unsubscribe(self, topic: str) -> None:
        self.calls.append(("unsubscribe", topic))

    async def presence_add(self, topic: str, member: Member) -> None:
        if self.fail_presence:
            raise ConnectionError("presence store down")
        await super().presence_add(topic, member)

    async def close(self) -> None:
        self.calls.append(("close",))
        await super().close()


def _conn(client_id: str, user: Any = None, **data: Any) -> Connection:
    if user is not None:
        data["user_id"] = user
    return Connection(client_id, Socket(), data=data)


def _frames(conn: Connection) -> list[dict[str, Any]]:
    return [json.loads(f) for f in conn.socket.frames]  # type: ignore[attr-defined]


async def _hub(**options: Any) -> tuple[Hub, RecordingBroker]:
    broker = RecordingBroker()
    hub = Hub(broker, instance="node-1", **options)
    await hub.start()
    return hub, broker


# -- connections and users ---------------------------------------------------------------------


async def test_add_indexes_by_client_id_and_by_user_as_text() -> None:
    """A connection of user 42 is found by its id and under user "42"; an anonymous one only by id."""
    hub, _ = await _hub()
    a, b, anon = _conn("a", 42), _conn("b", 42), _conn("anon")
    for conn in (a, b, anon):
        hub.add(conn)
    assert hub.connections == {"a": a, "b": b, "anon": anon}
    assert hub.users == {"42": {a, b}}


async def test_remove_forgets_the_connection_its_user_and_its_topics() -> None:
    """remove(): gone from connections, from its user (the user key too when it was the last),
    and from each topic it was in (the broker stops carrying a topic left empty); twice is a no-op."""
    hub, broker = await _hub()
    conn = _conn("a", "u1")
    hub.add(conn)
    await hub.subscribe(conn, "t1")
    await hub.subscribe(conn, "h:t2", HISTORY)
    await hub.remove(conn)
    assert hub.connections == {} and hub.users == {} and hub.members == {}
    assert conn.topics == set()
    await hub.remove(conn)
    assert hub.connections == {} and hub.users == {} and hub.members == {}
    assert ("unsubscribe", "t1") in broker.calls and ("unsubscribe", "h:t2") in broker.calls
    assert await broker.presence("t1") == []


async def test_rebind_user_moves_the_connection_between_users() -> None:
    """Anonymous -> u1 -> u2 -> anonymous: the index follows, emptied users disappear, and another
    connection of u1 stays under u1."""
    hub, _ = await _hub()
    conn, other = _conn("a"), _conn("b", "u1")
    hub.add(conn)
    hub.add(other)
    hub.rebind_user(conn, None, "u1")
    assert hub.users == {"u1": {conn, other}}
    hub.rebind_user(conn, "u1", "u2")
    assert hub.users == {"u1": {other}, "u2": {conn}}
    hub.rebind_user(conn, "u2", None)
    assert hub.users == {"u1": {other}}


async def test_rebind_user_to_the_same_user_changes_nothing() -> None:
    """Same user (also as int vs text): the index is left as it is."""
    hub, _ = await _hub()
    conn = _conn("a", 7)
    hub.add(conn)
    hub.rebind_user(conn, 7, "7")
    assert hub.users == {"7": {conn}}


async def test_rebind_user_of_a_removed_connection_does_not_index_it() -> None:
    """A connection already removed (closed while AUTH ran) is not put back under a user."""
    hub, _ = await _hub()
    conn = _conn("a")
    hub.rebind_user(conn, None, "u1")
    assert hub.users == {}


async def test_deliver_to_user_reaches_each_connection_of_that_user_only() -> None:
    """Two connections of u1 get the frame; u2's does not."""
    hub, _ = await _hub()
    a, b, c = _conn("a", "u1"), _conn("b", "u1"), _conn("c", "u2")
    for conn in (a, b, c):
        hub.add(conn)
    hub.deliver_to_user("u1", b'{"type":"HI"}')
    assert [len(_frames(x)) for x in (a, b, c)] == [1, 1, 0]


async def test_user_controls_for_a_user_not_connected_here_do_nothing() -> None:
    """The broker hands every instance each send-to-user and kick: for a user with no connection
    on this one, nothing happens (and nothing raises)."""
    hub, _ = await _hub()
    other = _conn("a", "u1")
    hub.add(other)
    hub.deliver_to_user("elsewhere", b'{"type":"HI"}')
    hub.disconnect_user("elsewhere", 4003, "kicked")
    assert _frames(other) == [] and other.close_code is None


async def test_disconnect_user_closes_each_connection_of_that_user_only() -> None:
    """disconnect_user(u1, 4003, ...): both of u1's connections close with it; u2's stays open."""
    hub, _ = await _hub()
    a, b, c = _conn("a", "u1"), _conn("b", "u1"), _conn("c", "u2")
    for conn in (a, b, c):
        hub.add(conn)
    hub.disconnect_user("u1", 4003, "kicked")
    assert (a.close_code, b.close_code, c.close_code) == (4003, 4003, None)
    assert a.close_reason == "kicked"


# -- topics, broker subscriptions, presence ------------------------------------------------------


async def test_the_broker_carries_a_topic_from_its_first_member_to_its_last() -> None:
    """Two members: the broker is asked to subscribe once (with the history policy) when the first
    joins and to unsubscribe once when the last leaves; the hub forgets the topic's policy then."""
    hub, broker = await _hub()
    a, b = _conn("a"), _conn("b")
    assert await hub.subscribe(a, "h:t", HISTORY)
    assert await hub.subscribe(b, "h:t", HISTORY)
    assert hub.topic_history == {"h:t": HISTORY}
    assert await hub.unsubscribe(a, "h:t")
    assert a.topics == set()
    assert ("unsubscribe", "h:t") not in broker.calls
    assert await hub.unsubscribe(b, "h:t")
    topic_calls = [c for c in broker.calls if c[0] in ("subscribe", "unsubscribe")]
    assert topic_calls == [("subscribe", "h:t", HISTORY), ("unsubscribe", "h:t")]
    assert hub.members == {} and hub.topic_history == {}


async def test_subscribing_twice_or_leaving_a_topic_not_joined_returns_false() -> None:
    """subscribe() again: False, nothing changes; unsubscribe() from a topic not joined (or by a
    connection that never joined any): False."""
    hub, _ = await _hub()
    conn, idle = _conn("a"), _conn("b")
    assert await hub.subscribe(conn, "t")
    assert not await hub.subscribe(conn, "t")
    assert not await hub.unsubscribe(conn, "other")
    assert not await hub.unsubscribe(idle, "t")
    assert hub.members == {"t": {conn}} and conn.topics == {"t"}


async def test_leaving_a_topic_drops_its_position() -> None:
    """A member's history position goes with its membership."""
    hub, _ = await _hub()
    conn = _conn("a")
    await hub.subscribe(conn, "h:t", HISTORY)
    conn.positions["h:t"] = Position(3, "e")
    await hub.unsubscribe(conn, "h:t")
    assert conn.positions == {}


async def test_presence_records_who_is_in_a_topic() -> None:
    """A member is present with its client id, its user as text, its public data and the instance;
    leaving removes it."""
    hub, broker = await _hub()
    conn = _conn("a", 5, public={"name": "Ann"}, secret="x")
    await hub.subscribe(conn, "t")
    assert await broker.presence("t") == [Member("a", "5", {"name": "Ann"}, "node-1")]
    await hub.unsubscribe(conn, "t")
    assert await broker.presence("t") == []


async def test_presence_shows_no_data_without_a_public_mapping() -> None:
    """``data["public"]`` missing or not a mapping: the member's data is empty."""
    hub, broker = await _hub()
    await hub.subscribe(_conn("a", public="not a mapping"), "t")
    await hub.subscribe(_conn("b"), "t")
    assert [m.data for m in await broker.presence("t")] == [{}, {}]


async def test_joins_and_leaves_are_announced_on_topics_that_ask_for_it() -> None:
    """With ``announces`` true for the topic, members receive ``$ws:presence`` join and leave events
    (topic, event, clientId, userId, public data); other topics announce nothing."""
    hub, _ = await _hub(announces=lambda topic: topic == "lobby")
    watcher, joiner = _conn("w"), _conn("j", "u9", public={"n": 1})
    await hub.subscribe(watcher, "lobby")
    await hub.subscribe(joiner, "lobby")
    await hub.subscribe(joiner, "quiet")
    await hub.unsubscribe(joiner, "lobby")
    events = [f["payload"] for f in _frames(watcher) if f["type"] == "$ws:presence"]
    joined = {"topic": "lobby", "event": "join", "clientId": "j", "userId": "u9", "data": {"n": 1}}
    assert events[-2:] == [joined, {**joined, "event": "leave"}]
    assert all(e["topic"] == "lobby" for e in events)


async def test_by_default_no_topic_announces_joins_or_leaves() -> None:
    """A hub built without ``announces``: members get no ``$ws:presence`` events."""
    hub, _ = await _hub()
    watcher, joiner = _conn("w"), _conn("j")
    await hub.subscribe(watcher, "lobby")
    await hub.subscribe(joiner, "lobby")
    await hub.unsubscribe(joiner, "lobby")
    assert _frames(watcher) == []


async def test_a_presence_failure_leaves_the_membership_standing() -> None:
    """The presence store failing: the connection is still a member and receives publications."""
    hub, broker = await _hub()
    broker.fail_presence = True
    conn = _conn("a")
    assert await hub.subscribe(conn, "t")
    hub.deliver(Publication("t", b'{"type":"MSG"', b"}"))
    assert [f["type"] for f in _frames(conn)] == ["MSG"]


# -- brokers -------------------------------------------------------------------------------------


async def test_set_broker_moves_every_topic_to_the_new_broker() -> None:
    """A new broker: the old one is closed, the new one started and subscribed to each topic with
    members, with that topic's history policy."""
    hub, old = await _hub()
    await hub.subscribe(_conn("a"), "t")
    await hub.subscribe(_conn("b"), "h:t", HISTORY)
    new = RecordingBroker()
    await hub.set_broker(new)
    assert hub.broker is new
    assert old.calls[-1] == ("close",)
    assert new.calls[0] == ("start",)
    assert sorted(new.calls[1:], key=str) == sorted([("subscribe", "t", None), ("subscribe", "h:t", HISTORY)], key=str)


async def test_set_broker_to_the_same_broker_does_nothing() -> None:
    """The broker already in use: not closed, not restarted."""
    hub, broker = await _hub()
    await hub.set_broker(broker)
    assert broker.calls == [("start",)]


async def test_start_is_idempotent_and_publish_starts_the_hub() -> None:
    """start() twice starts the broker once; a hub never started starts on its first publish, so
    the publication reaches its members; after close() a publish starts it again."""
    broker = RecordingBroker()
    hub = Hub(broker)
    conn = _conn("a")
    await hub.subscribe(conn, "t")
    await hub.publish(Publication("t", b'{"type":"MSG"', b"}"))
    await hub.start()
    assert broker.calls.count(("start",)) == 1
    assert len(_frames(conn)) == 1
    await hub.close()
    await hub.publish(Publication("t", b'{"type":"MSG"', b"}"))
    assert broker.calls.count(("start",)) == 2
    assert len(_frames(conn)) == 2


async def test_a_hub_without_a_broker_uses_a_memory_broker() -> None:
    """Hub(): a MemoryBroker of its own."""
    assert isinstance(Hub().broker, MemoryBroker)
