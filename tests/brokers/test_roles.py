"""Broker roles: which of pub/sub, history, presence and user control a broker plays, and the
sentence that refuses a broker lacking one that the application needs."""

from __future__ import annotations

from wskit.pubsub import MemoryBroker
from wskit.pubsub.broker import (
    Broker,
    BrokerListener,
    BrokerState,
    HistoryPolicy,
    HistoryStore,
    Member,
    PresenceStore,
    Publication,
    PubSubBroker,
    Role,
    UserControl,
    missing_roles,
    roles_of,
)
from wskit.pubsub.redis import RedisBroker


class PubSubOnly:
    """A third-party broker that carries publications and keeps nothing."""

    @property
    def state(self) -> BrokerState:
        return BrokerState.READY

    async def start(self, listener: BrokerListener) -> None:
        return None

    async def publish(self, publication: Publication, history: HistoryPolicy | None = None) -> None:
        return None

    async def subscribe(self, topic: str, history: HistoryPolicy | None = None) -> None:
        return None

    async def unsubscribe(self, topic: str) -> None:
        return None

    async def close(self) -> None:
        return None


class WithPresence(PubSubOnly):
    """Pub/sub and presence, no history, no user control."""

    async def presence_add(self, topic: str, member: Member) -> None:
        return None

    async def presence_remove(self, topic: str, client_id: str) -> None:
        return None

    async def presence(self, topic: str) -> list[Member]:
        return []


class HalfHistory(PubSubOnly):
    """Has ``position`` but not ``recover``: not a history store."""

    async def position(self, topic: str, history: HistoryPolicy) -> tuple[int, str]:
        return 0, ""


def test_the_shipped_brokers_play_every_role() -> None:
    """MemoryBroker and RedisBroker (not started) play all four roles and are Brokers."""
    for broker in (MemoryBroker(), RedisBroker("redis://127.0.0.1:1/0")):
        assert roles_of(broker) == frozenset(Role)
        assert isinstance(broker, Broker)


def test_a_pubsub_only_broker_plays_only_pubsub() -> None:
    """A broker with just the six pub/sub members plays pub/sub and is not a full Broker."""
    broker = PubSubOnly()
    assert roles_of(broker) == {Role.PUBSUB}
    assert isinstance(broker, PubSubBroker)
    assert not isinstance(broker, Broker)


def test_roles_are_found_independently() -> None:
    """Presence without history or user control is seen as exactly pub/sub and presence."""
    broker = WithPresence()
    assert roles_of(broker) == {Role.PUBSUB, Role.PRESENCE}
    assert isinstance(broker, PresenceStore)
    assert not isinstance(broker, HistoryStore)
    assert not isinstance(broker, UserControl)


def test_a_role_needs_every_one_of_its_methods() -> None:
    """``position`` without ``recover`` does not make a history store."""
    assert Role.HISTORY not in roles_of(HalfHistory())


def test_an_object_without_pubsub_plays_nothing() -> None:
    """Something that is no broker at all plays no role."""
    assert roles_of(object()) == frozenset()


def test_missing_roles_names_the_broker_the_role_and_what_needs_it() -> None:
    """One sentence per missing role, naming the broker's class, the role and the need."""
    needs = {
        Role.HISTORY: "router.enable_history('room:*')",
        Role.PRESENCE: "router.presence('room:1')",
        Role.USERS: "router.ban_user('u1')",
    }
    assert missing_roles(WithPresence(), needs) == [
        "broker WithPresence keeps no history, but router.enable_history('room:*') needs it",
        "broker WithPresence has no user control, but router.ban_user('u1') needs it",
    ]


def test_missing_roles_is_empty_when_every_need_is_met() -> None:
    """A broker that plays every needed role gets no sentence."""
    needs = {Role.PUBSUB: "serve()", Role.HISTORY: "router.enable_history('room:*')"}
    assert missing_roles(MemoryBroker(), needs) == []
    assert missing_roles(PubSubOnly(), {Role.PUBSUB: "serve()"}) == []


def test_missing_pubsub_is_worded_too() -> None:
    """An object that carries no publications is refused in the same words."""
    assert missing_roles(object(), {Role.PUBSUB: "serve(broker=...)"}) == [
        "broker object carries no publications, but serve(broker=...) needs it"
    ]


def test_missing_roles_does_not_show_the_brokers_repr() -> None:
    """The broker is named by its class: a Redis URL with a password stays out of the message."""

    class NoHistoryRedis(RedisBroker):
        recover = None  # type: ignore[assignment]

    broker = NoHistoryRedis("redis://:s3cret@127.0.0.1:1/0")
    [sentence] = missing_roles(broker, {Role.HISTORY: "router.enable_history('room:*')"})
    assert "s3cret" not in sentence
    assert sentence.startswith("broker NoHistoryRedis keeps no history")
