"""A conformance suite for :class:`~wskit.pubsub.broker.Broker` implementations.

Every broker (``MemoryBroker``, ``RedisBroker``, and any third party's) must keep the same
promises, so they are written down once, as tests. To check a broker, subclass
:class:`BrokerConformance` in a pytest module and provide a ``make_broker`` fixture: a
callable that returns a new, not yet started broker. Brokers made by the same factory must
share their backend (two "instances" of one deployment); keyword options ``presence_ttl_s``
and ``heartbeat_s`` are passed for the presence expiry test (ignore what you do not have)::

    from wskit.testing.brokers import BrokerConformance

    class TestMyBroker(BrokerConformance):
        @pytest.fixture
        def make_broker(self):
            return lambda **options: MyBroker(DSN, **options)

        async def crash(self, broker):
            await broker.kill_without_cleanup()  # what a dying process would leave behind

Set ``shared_backend = False`` for a broker that lives in one process (the multi-instance
tests are then skipped). The suite needs ``pytest`` and ``pytest-asyncio``.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from wskit.connection import OverflowPolicy
from wskit.pubsub.broker import Broker, BrokerState, HistoryPolicy, Member, Publication, RecoveryError

__all__ = ["BrokerConformance", "BrokerSet", "RecordingListener"]


class RecordingListener:
    """A :class:`~wskit.pubsub.broker.BrokerListener` that records what it is handed."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.to_user: list[tuple[str, bytes]] = []
        self.disconnects: list[tuple[str, int, str]] = []
        #: topics reported by ``lost()``, each time, in order
        self.losses: list[str] = []
        self._changed = asyncio.Event()

    def deliver(self, publication: Publication) -> None:
        self.publications.append(publication)
        self._changed.set()

    def lost(self, topic: str) -> None:
        self.losses.append(topic)
        self._changed.set()

    def deliver_to_user(self, user_id: str, data: bytes) -> None:
        self.to_user.append((user_id, data))
        self._changed.set()

    def disconnect_user(self, user_id: str, code: int, reason: str) -> None:
        self.disconnects.append((user_id, code, reason))
        self._changed.set()

    def on(self, topic: str) -> list[Publication]:
        """What was delivered for ``topic``, in delivery order."""
        return [p for p in self.publications if p.topic == topic]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds; ``AssertionError`` after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"condition not met within {timeout}s") from None

    async def wait_for(self, topic: str, count: int, timeout: float = 5.0) -> list[Publication]:
        """Wait for at least ``count`` deliveries on ``topic`` and return them all."""
        await self.wait_until(lambda: len(self.on(topic)) >= count, timeout)
        return self.on(topic)


class BrokerSet:
    """Starts brokers from one factory (one backend), each with its own listener; closes them all."""

    def __init__(self, factory: Callable[..., Broker]) -> None:
        self.factory = factory
        self.started: list[Broker] = []

    async def start(self, **options: Any) -> tuple[Broker, RecordingListener]:
        broker = self.factory(**options)
        listener = RecordingListener()
        await broker.start(listener)
        self.started.append(broker)
        return broker, listener

    async def close(self) -> None:
        for broker in reversed(self.started):
            await broker.close()


def _topic(kind: str = "t") -> str:
    return f"{kind}:{uuid.uuid4().hex[:10]}"


def _pub(topic: str, n: int, *, exclude: str | None = None, meta: bytes | None = None) -> Publication:
    return Publication(topic, b'{"type":"MSG"', b',"payload":{"n":%d}}' % n, meta, exclude)


def _ns(pubs: list[Publication]) -> list[int]:
    """The ``n`` of each publication made by :func:`_pub`, in order."""
    return [int(p.tail.split(b":")[-1].rstrip(b"}")) for p in pubs]


def _state_of(broker: Broker) -> BrokerState:
    return broker.state  # read through a call: a type checker would keep the state it saw before close()


def _has_user_traffic(listener: RecordingListener) -> bool:
    return bool(listener.to_user and listener.disconnects)


class BrokerConformance:
    """The behaviour every broker must show. Subclass it and provide a ``make_broker`` fixture."""

    #: brokers made by one factory share a backend (False: one process; multi-instance tests skip)
    shared_backend: ClassVar[bool] = True
    #: how long to wait for something that must happen
    timeout: ClassVar[float] = 5.0
    #: how long to wait before concluding that nothing more arrives
    settle: ClassVar[float] = 0.2

    @pytest_asyncio.fixture
    async def brokers(self, make_broker: Callable[..., Broker]) -> AsyncIterator[BrokerSet]:
        """Brokers started for one test, closed after it."""
        found = BrokerSet(make_broker)
        try:
            yield found
        finally:
            await found.close()

    async def crash(self, broker: Broker) -> None:
        """Make ``broker`` vanish as a killed process would (override for the presence expiry test)."""
        pytest.skip("override crash() to test presence expiry of a dead instance")

    def _require_shared(self) -> None:
        if not self.shared_backend:
            pytest.skip("this broker lives in one process")

    # -- lifecycle --------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_ready_after_start_and_closed_after_close(self, brokers: BrokerSet) -> None:
        """A started broker is READY; close() makes it CLOSED and can be called twice."""
        broker, _ = await brokers.start()
        assert broker.state is BrokerState.READY
        await broker.close()
        assert _state_of(broker) is BrokerState.CLOSED
        await broker.close()

    # -- delivery -----------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_delivers_to_a_subscribed_listener(self, brokers: BrokerSet) -> None:
        """A publication reaches the listener of a process subscribed to its topic, bytes intact."""
        broker, listener = await brokers.start()
        topic = _topic()
        await broker.subscribe(topic)
        await broker.publish(_pub(topic, 1))
        (got,) = await listener.wait_for(topic, 1, self.timeout)
        assert got.frame() == b'{"type":"MSG","payload":{"n":1}}'
        assert got.offset is None

    @pytest.mark.asyncio
    async def test_exclude_and_meta_are_carried(self, brokers: BrokerSet) -> None:
        """``exclude`` and the publisher's ``meta`` arrive unchanged."""
        broker, listener = await brokers.start()
        topic = _topic()
        await broker.subscribe(topic)
        await broker.publish(_pub(topic, 7, exclude="client-1", meta=b'{"k":"v"}'))
        (got,) = await listener.wait_for(topic, 1, self.timeout)
        assert got.exclude == "client-1"
        assert got.frame() == b'{"type":"MSG","meta":{"k":"v"},"payload":{"n":7}}'

    @pytest.mark.asyncio
    async def test_overflow_policy_is_carried(self, brokers: BrokerSet) -> None:
        """A publication's own overflow policy arrives with it (the publisher's instance included),
        with and without history."""
        broker, listener = await brokers.start()
        topic, kept = _topic(), _topic("h")
        history = HistoryPolicy("h:*", max_len=10, ttl_s=60)
        await broker.subscribe(topic)
        await broker.subscribe(kept, history)
        for name, policy in ((topic, None), (kept, history)):
            pub = _pub(name, 1)
            pub.overflow = OverflowPolicy.DROP_OLDEST
            await broker.publish(pub, policy)
            (got,) = await listener.wait_for(name, 1, self.timeout)
            assert got.overflow == "drop-oldest"
        (recovered,) = await broker.recover(kept, 0, got.epoch or "", history)
        assert recovered.overflow == "drop-oldest"

    @pytest.mark.asyncio
    async def test_order_of_one_publisher_is_kept(self, brokers: BrokerSet) -> None:
        """200 publishes from one publisher arrive in publish order, on every subscribed instance."""
        a, listener_a = await brokers.start()
        listeners = [listener_a]
        topic = _topic()
        await a.subscribe(topic)
        if self.shared_backend:
            b, listener_b = await brokers.start()
            await b.subscribe(topic)
            listeners.append(listener_b)
        for n in range(200):
            await a.publish(_pub(topic, n))
        for listener in listeners:
            assert _ns(await listener.wait_for(topic, 200, self.timeout)) == list(range(200))

    @pytest.mark.asyncio
    async def test_every_instance_receives_exactly_once(self, brokers: BrokerSet) -> None:
        """A publish reaches each subscribed instance once, the publisher's included."""
        self._require_shared()
        a, listener_a = await brokers.start()
        b, listener_b = await brokers.start()
        topic = _topic()
        await a.subscribe(topic)
        await b.subscribe(topic)
        for n in range(20):
            await b.publish(_pub(topic, n))
        for listener in (listener_a, listener_b):
            await listener.wait_for(topic, 20, self.timeout)
        await asyncio.sleep(self.settle)
        assert _ns(listener_a.on(topic)) == _ns(listener_b.on(topic)) == list(range(20))

    @pytest.mark.asyncio
    async def test_instance_without_members_receives_nothing(self, brokers: BrokerSet) -> None:
        """An instance receives only the topics it subscribed to."""
        self._require_shared()
        a, listener_a = await brokers.start()
        b, listener_b = await brokers.start()
        wanted, other = _topic(), _topic()
        await a.subscribe(wanted)
        await a.subscribe(other)
        await b.subscribe(wanted)
        await a.publish(_pub(other, 1))
        await a.publish(_pub(wanted, 2))
        await listener_b.wait_for(wanted, 1, self.timeout)
        await listener_a.wait_for(other, 1, self.timeout)
        await asyncio.sleep(self.settle)
        assert listener_b.on(other) == []

    @pytest.mark.asyncio
    async def test_unsubscribe_stops_delivery(self, brokers: BrokerSet) -> None:
        """After unsubscribe() an instance receives no more of the topic."""
        self._require_shared()
        a, listener_a = await brokers.start()
        b, listener_b = await brokers.start()
        topic = _topic()
        await a.subscribe(topic)
        await b.subscribe(topic)
        await a.publish(_pub(topic, 1))
        await listener_b.wait_for(topic, 1, self.timeout)
        await b.unsubscribe(topic)
        await a.publish(_pub(topic, 2))
        await listener_a.wait_for(topic, 2, self.timeout)
        await asyncio.sleep(self.settle)
        assert _ns(listener_b.on(topic)) == [1]

    # -- history ------------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_history_offsets_increase_by_one(self, brokers: BrokerSet) -> None:
        """Deliveries of a history topic carry offsets 1, 2, 3... in one epoch; position() agrees."""
        broker, listener = await brokers.start()
        topic, history = _topic("h"), HistoryPolicy("h:*", max_len=100, ttl_s=60)
        await broker.subscribe(topic, history)
        for n in range(5):
            await broker.publish(_pub(topic, n), history)
        got = await listener.wait_for(topic, 5, self.timeout)
        assert [p.offset for p in got] == [1, 2, 3, 4, 5]
        epochs = {p.epoch for p in got}
        assert len(epochs) == 1
        assert await broker.position(topic, history) == (5, epochs.pop())
        assert b'"meta":{"offset":1,"epoch":' in got[0].frame()

    @pytest.mark.asyncio
    async def test_position_of_a_new_topic(self, brokers: BrokerSet) -> None:
        """A topic never published is at offset 0, in an epoch that its first publish keeps."""
        broker, listener = await brokers.start()
        topic, history = _topic("h"), HistoryPolicy("h:*")
        last, epoch = await broker.position(topic, history)
        assert last == 0
        assert await broker.position(topic, history) == (0, epoch)
        await broker.subscribe(topic, history)
        await broker.publish(_pub(topic, 1), history)
        (got,) = await listener.wait_for(topic, 1, self.timeout)
        assert (got.offset, got.epoch) == (1, epoch)
        assert [p.offset for p in await broker.recover(topic, 0, epoch, history)] == [1]

    @pytest.mark.asyncio
    async def test_recover_returns_exactly_the_missed_ones(self, brokers: BrokerSet) -> None:
        """recover(offset) returns every publication after ``offset``, in order; none when up to date."""
        broker, _ = await brokers.start()
        topic, history = _topic("h"), HistoryPolicy("h:*", max_len=100, ttl_s=60)
        for n in range(10):
            await broker.publish(_pub(topic, n, exclude="c1" if n == 7 else None), history)
        last, epoch = await broker.position(topic, history)
        assert last == 10
        missed = await broker.recover(topic, 4, epoch, history)
        assert [p.offset for p in missed] == [5, 6, 7, 8, 9, 10]
        assert _ns(missed) == [4, 5, 6, 7, 8, 9]
        assert {p.epoch for p in missed} == {epoch}
        assert missed[3].exclude == "c1"
        assert await broker.recover(topic, 10, epoch, history) == []

    @pytest.mark.asyncio
    async def test_recover_with_another_epoch_fails(self, brokers: BrokerSet) -> None:
        """An epoch that is not the topic's raises RecoveryError (reason "recovery")."""
        broker, _ = await brokers.start()
        topic, history = _topic("h"), HistoryPolicy("h:*")
        await broker.publish(_pub(topic, 1), history)
        with pytest.raises(RecoveryError) as caught:
            await broker.recover(topic, 0, "not-the-epoch", history)
        assert caught.value.details["reason"] == "recovery"

    @pytest.mark.asyncio
    async def test_recover_beyond_the_last_offset_fails(self, brokers: BrokerSet) -> None:
        """An offset the topic never reached raises RecoveryError."""
        broker, _ = await brokers.start()
        topic, history = _topic("h"), HistoryPolicy("h:*")
        await broker.publish(_pub(topic, 1), history)
        _, epoch = await broker.position(topic, history)
        with pytest.raises(RecoveryError):
            await broker.recover(topic, 5, epoch, history)

    @pytest.mark.asyncio
    async def test_history_is_trimmed_to_max_len(self, brokers: BrokerSet) -> None:
        """Only the last ``max_len`` are kept: recovering from before them fails, from within works."""
        broker, _ = await brokers.start()
        topic, history = _topic("h"), HistoryPolicy("h:*", max_len=5, ttl_s=60)
        for n in range(10):
            await broker.publish(_pub(topic, n), history)
        _, epoch = await broker.position(topic, history)
        with pytest.raises(RecoveryError):
            await broker.recover(topic, 2, epoch, history)
        assert [p.offset for p in await broker.recover(topic, 5, epoch, history)] == [6, 7, 8, 9, 10]

    @pytest.mark.asyncio
    async def test_history_expires_after_ttl(self, brokers: BrokerSet) -> None:
        """Entries older than ``ttl_s`` are gone: recovering over them fails."""
        broker, _ = await brokers.start()
        topic, history = _topic("h"), HistoryPolicy("h:*", max_len=100, ttl_s=0.3)
        for n in range(3):
            await broker.publish(_pub(topic, n), history)
        _, epoch = await broker.position(topic, history)
        assert len(await broker.recover(topic, 1, epoch, history)) == 2
        await asyncio.sleep(0.6)
        with pytest.raises(RecoveryError):
            await broker.recover(topic, 1, epoch, history)

    @pytest.mark.asyncio
    async def test_history_is_shared_by_instances(self, brokers: BrokerSet) -> None:
        """Offsets are per topic across instances, and any instance can recover them."""
        self._require_shared()
        a, listener_a = await brokers.start()
        b, _ = await brokers.start()
        topic, history = _topic("h"), HistoryPolicy("h:*")
        await a.subscribe(topic, history)
        await a.publish(_pub(topic, 1), history)
        await b.publish(_pub(topic, 2), history)
        got = await listener_a.wait_for(topic, 2, self.timeout)
        assert [p.offset for p in got] == [1, 2]
        assert [p.offset for p in await b.recover(topic, 0, got[0].epoch or "", history)] == [1, 2]

    # -- presence -----------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_presence_add_remove_list(self, brokers: BrokerSet) -> None:
        """presence() lists the members added and not removed, with their user and data."""
        broker, _ = await brokers.start()
        topic = _topic()
        await broker.presence_add(topic, Member("c1", "u1", {"name": "Ada"}))
        await broker.presence_add(topic, Member("c2", None, {}))
        found = sorted((m.client_id, m.user_id, dict(m.data)) for m in await broker.presence(topic))
        assert found == [("c1", "u1", {"name": "Ada"}), ("c2", None, {})]
        await broker.presence_remove(topic, "c1")
        assert [m.client_id for m in await broker.presence(topic)] == ["c2"]
        await broker.presence_remove(topic, "c2")
        assert await broker.presence(topic) == []
        assert await broker.presence(_topic()) == []

    @pytest.mark.asyncio
    async def test_presence_is_seen_from_every_instance(self, brokers: BrokerSet) -> None:
        """A member added on one instance is listed by the others."""
        self._require_shared()
        a, _ = await brokers.start()
        b, _ = await brokers.start()
        topic = _topic()
        await a.presence_add(topic, Member("ca", "ua"))
        await b.presence_add(topic, Member("cb", "ub"))
        for broker in (a, b):
            assert sorted(m.client_id for m in await broker.presence(topic)) == ["ca", "cb"]

    @pytest.mark.asyncio
    async def test_presence_of_a_closed_instance_is_removed(self, brokers: BrokerSet) -> None:
        """An instance that closes takes its members out of presence at once."""
        self._require_shared()
        a, _ = await brokers.start()
        b, _ = await brokers.start()
        topic = _topic()
        await a.presence_add(topic, Member("ca"))
        await b.presence_add(topic, Member("cb"))
        await b.close()
        assert [m.client_id for m in await a.presence(topic)] == ["ca"]

    @pytest.mark.asyncio
    async def test_presence_of_a_dead_instance_expires(self, brokers: BrokerSet) -> None:
        """Members of an instance that died without closing vanish once its presence TTL runs out."""
        self._require_shared()
        a, _ = await brokers.start()
        b, _ = await brokers.start(presence_ttl_s=0.5, heartbeat_s=0.1)
        topic = _topic()
        await b.presence_add(topic, Member("cb"))
        await asyncio.sleep(0.7)  # longer than the TTL: the heartbeat keeps it alive
        assert [m.client_id for m in await a.presence(topic)] == ["cb"]
        await self.crash(b)
        await asyncio.sleep(0.8)
        assert await a.presence(topic) == []

    # -- users --------------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_send_to_user_and_disconnect_user_reach_every_listener(self, brokers: BrokerSet) -> None:
        """send_to_user / disconnect_user are handed to the listener of every instance."""
        a, listener_a = await brokers.start()
        listeners = [listener_a]
        if self.shared_backend:
            listeners.append((await brokers.start())[1])
        await a.send_to_user("u1", b'{"type":"HELLO"}')
        await a.disconnect_user("u1", 4000, "bye")
        for listener in listeners:
            await listener.wait_until(functools.partial(_has_user_traffic, listener), self.timeout)
            assert listener.to_user == [("u1", b'{"type":"HELLO"}')]
            assert listener.disconnects == [("u1", 4000, "bye")]

    @pytest.mark.asyncio
    async def test_ban_unban_and_ban_ttl(self, brokers: BrokerSet) -> None:
        """ban() holds until unban() or its TTL; every instance sees it."""
        a, _ = await brokers.start()
        b = (await brokers.start())[0] if self.shared_backend else a
        user = uuid.uuid4().hex[:8]
        assert not await b.is_banned(user)
        await a.ban(user)
        assert await b.is_banned(user)
        await a.unban(user)
        assert not await b.is_banned(user)
        await a.ban(user, ttl_s=0.3)
        assert await b.is_banned(user)
        await asyncio.sleep(0.5)
        assert not await b.is_banned(user)
