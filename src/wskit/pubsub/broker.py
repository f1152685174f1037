"""The Broker interface: what moves between server processes, and what they share.

The hub keeps the local side (which connection is in which topic); a broker carries
publications between processes and keeps the state every process must agree on: topic
history with offsets, presence, and the per-user controls (send to a user, disconnect a
user, bans). One process uses :class:`~wskit.pubsub.memory.MemoryBroker`; many use
:class:`~wskit.pubsub.redis.RedisBroker`. Both play every role and pass
:mod:`wskit.testing.brokers`.

A :class:`Publication` is serialised once by the publisher. Topics with history get an
``offset`` (increasing by one per publish, per topic) and an ``epoch`` (changes whenever the
history is lost or reset) from the broker; the frame each subscriber receives is built once
per process from the publication, with those two and the ``topic`` spliced into its
``meta``. A topic without history keeps WS-Kit's bare delivery (no server meta: WS-Kit's
client validates ``meta`` strictly) except for members that subscribed themselves with
``$ws:subscribe``, which get the topic too (:meth:`Publication.tagged_frame`).

Roles
-----
:class:`Broker` is four protocols in one, so that a third-party broker may play only some:

============  ========================  ============================================
role          protocol                  methods
============  ========================  ============================================
pub/sub       :class:`PubSubBroker`     ``state``, ``start``, ``publish``,
                                        ``subscribe``, ``unsubscribe``, ``close``
history       :class:`HistoryStore`     ``recover``, ``position``
presence      :class:`PresenceStore`    ``presence_add``, ``presence_remove``,
                                        ``presence``
user control  :class:`UserControl`      ``send_to_user``, ``disconnect_user``,
                                        ``ban``, ``unban``, ``is_banned``
============  ========================  ============================================

What the framework does with a broker that lacks a role (:func:`roles_of` tells which it
plays, :func:`missing_roles` words the refusal):

- **pub/sub** is required: an object that does not play it is refused when serving starts.
- **history** is needed as soon as the router keeps history (``router.enable_history``):
  serving fails at start, naming the broker and the pattern ("broker X keeps no history, but
  router.enable_history('room:*') needs it"). Without history patterns the broker is never
  asked for it, and ``publish``/``subscribe`` always get ``history=None``.
- **presence** is optional: without it joins and leaves are not recorded (nothing is lost,
  since nothing could read them), and asking for presence (``router.presence``) raises
  :class:`~wskit.errors.WsKitError` ``UNIMPLEMENTED`` naming the broker. Presence *events*
  (``router.enable_presence_events``) are publications and need only pub/sub.
- **user control** is optional: without it ``send_to_user``, ``disconnect_user``,
  ``ban_user`` and ``unban_user`` raise ``WsKitError`` ``UNIMPLEMENTED`` naming the broker
  (never a silent local-only delivery), and no ban is checked at the upgrade or at ``AUTH``
  (none can exist).

A broker calls only the :class:`BrokerListener` methods of the roles it plays: ``deliver``
(pub/sub), ``lost`` (history), ``deliver_to_user`` and ``disconnect_user`` (user control).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol, runtime_checkable

from wskit.errors import RecoveryError
from wskit.protocol import ERROR_TYPE, dumps, frame, type_prefix
from wskit.topics import HistoryPolicy

__all__ = [
    "Broker",
    "BrokerListener",
    "BrokerState",
    "HistoryPolicy",
    "HistoryStore",
    "Member",
    "PresenceStore",
    "PubSubBroker",
    "Publication",
    "RecoveryError",
    "Role",
    "UserControl",
    "lost_frame",
    "missing_roles",
    "roles_of",
]


class BrokerState(StrEnum):
    """Link state of a broker (readiness and metrics read it)."""

    CONNECTING = "connecting"
    READY = "ready"
    DOWN = "down"
    CLOSED = "closed"


_ERROR_PREFIX = type_prefix(ERROR_TYPE)


def _splice(meta: bytes | None, keys: bytes) -> bytes:
    """``meta`` (a JSON object, or None) with ``keys`` (``"k":v,...}``) added at its end."""
    return (meta[:-1] + b"," + keys) if meta and meta != b"{}" else b"{" + keys


def lost_frame(topic: str) -> bytes:
    """The ``ERROR`` frame telling a member that publications of ``topic`` were lost (a gap
    the history no longer covers): the recovery error, unprompted, so the client reloads."""
    error = RecoveryError(topic, "Messages of this topic were lost and its history no longer holds them; reload")
    return frame(_ERROR_PREFIX, b"{}", dumps(error.to_payload()))


class Publication:
    """One published message: the frame in two pre-encoded halves around its ``meta``.

    ``head`` is ``{"type":"X"``; ``tail`` is ``,"payload":{...}}`` (or ``}``); ``meta`` the
    publisher's meta object (JSON bytes) or None. ``offset``/``epoch`` are set by the broker
    for topics with history.
    """

    __slots__ = ("_frame", "_tagged", "epoch", "exclude", "head", "meta", "offset", "overflow", "tail", "topic")

    def __init__(
        self,
        topic: str,
        head: bytes,
        tail: bytes,
        meta: bytes | None = None,
        exclude: str | None = None,
        offset: int | None = None,
        epoch: str | None = None,
    ) -> None:
        self.topic = topic
        self.head = head
        self.tail = tail
        self.meta = meta
        self.exclude = exclude
        self.offset = offset
        self.epoch = epoch
        #: this publication's policy for subscribers whose send queue is full (None: theirs);
        #: carried across brokers by its string value (the hub turns it back into the enum)
        self.overflow: Any = None
        self._frame: bytes | None = None
        self._tagged: bytes | None = None

    def with_position(self, offset: int, epoch: str) -> Publication:
        """A copy carrying its history position."""
        copy = Publication(self.topic, self.head, self.tail, self.meta, self.exclude, offset, epoch)
        copy.overflow = self.overflow
        return copy

    def frame(self) -> bytes:
        """The bytes every subscriber receives (built once, then cached).

        On a history topic ``meta`` carries ``offset``, ``epoch`` and ``topic`` after the
        publisher's keys: a client tracks its position per topic from them, whoever made the
        subscription. Otherwise it is the publisher's meta alone (WS-Kit's delivery).
        """
        data = self._frame
        if data is None:
            meta = self.meta
            if self.offset is not None:
                position = b'"offset":%d,"epoch":%s,"topic":%s}' % (
                    self.offset,
                    json.dumps(self.epoch).encode(),
                    json.dumps(self.topic).encode(),
                )
                meta = _splice(meta, position)
            data = self.head + (b',"meta":' + meta if meta is not None else b"") + self.tail
            self._frame = data
        return data

    def tagged_frame(self) -> bytes:
        """The bytes for a member that subscribed itself (``$ws:subscribe``): :meth:`frame`
        with ``meta.topic`` also on a topic without history. Built once, then cached: the
        payload is not serialised again, only the envelope around it is joined."""
        if self.offset is not None:
            return self.frame()
        data = self._tagged
        if data is None:
            meta = _splice(self.meta, b'"topic":%s}' % json.dumps(self.topic).encode())
            data = self._tagged = self.head + b',"meta":' + meta + self.tail
        return data

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, for brokers that carry publications as text.

        ``overflow`` is kept (as its string value, key ``v``, only when set): a broker that
        delivers even the publisher's own subscribers through its backend (Redis echoes every
        publish) would otherwise lose the policy for everyone.
        """
        d: dict[str, Any] = {
            "t": self.topic,
            "h": self.head.decode(),
            "b": self.tail.decode(),
            "m": self.meta.decode() if self.meta is not None else None,
            "x": self.exclude,
            "o": self.offset,
            "e": self.epoch,
        }
        if self.overflow is not None:
            d["v"] = str(self.overflow)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Publication:
        """The publication :meth:`to_dict` described (``overflow`` comes back as a string)."""
        meta = d.get("m")
        pub = cls(
            d["t"], d["h"].encode(), d["b"].encode(), meta.encode() if meta is not None else None,
            d.get("x"), d.get("o"), d.get("e"),
        )  # fmt: skip
        overflow = d.get("v")
        if overflow is not None:
            pub.overflow = str(overflow)
        return pub

    def __repr__(self) -> str:
        return f"<Publication {self.topic} offset={self.offset} {self.head!r}>"


@dataclass(frozen=True, slots=True)
class Member:
    """One connection present in a topic, on any instance."""

    client_id: str
    user_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    instance: str = ""


class BrokerListener(Protocol):
    """The receiving side of a broker: this process's hub."""

    def deliver(self, publication: Publication) -> None:
        """A publication for a topic this process subscribed to. Must not block."""
        ...

    def lost(self, topic: str) -> None:
        """Publications of history topic ``topic`` were lost before reaching this process.

        Called (instead of delivering them) when this process's link was down longer than the
        history covers: the next publications handed over skip offsets. The listener must tell
        the topic's members that their position is void (``FAILED_PRECONDITION`` recovery).
        Must not block.
        """
        ...

    def deliver_to_user(self, user_id: str, data: bytes) -> None:
        """Send ``data`` to this process's connections of ``user_id``."""
        ...

    def disconnect_user(self, user_id: str, code: int, reason: str) -> None:
        """Close this process's connections of ``user_id``."""
        ...


@runtime_checkable
class PubSubBroker(Protocol):
    """The role every broker plays: carry publications between processes."""

    @property
    def state(self) -> BrokerState:
        """The link state (``READY`` when publishes can go through)."""
        ...

    async def start(self, listener: BrokerListener) -> None:
        """Begin delivering to ``listener``; called once before any other method."""
        ...

    async def publish(self, publication: Publication, history: HistoryPolicy | None = None) -> None:
        """Deliver to every member of the topic in every process; with ``history``, record it.

        ``history`` is only ever passed to a broker that is also a :class:`HistoryStore`.
        Raises :class:`~wskit.errors.WsKitError` ``UNAVAILABLE`` quickly when it cannot.
        """
        ...

    async def subscribe(self, topic: str, history: HistoryPolicy | None = None) -> None:
        """This process now has members of ``topic``: start receiving it."""
        ...

    async def unsubscribe(self, topic: str) -> None:
        """The last local member of ``topic`` left: stop receiving it."""
        ...

    async def close(self) -> None:
        """Flush and release resources; idempotent."""
        ...


@runtime_checkable
class HistoryStore(Protocol):
    """The history role: offsets, epochs and the kept publications of history topics."""

    async def recover(self, topic: str, offset: int, epoch: str, history: HistoryPolicy) -> list[Publication]:
        """The publications after ``offset`` in ``epoch``, in order.

        Raises :class:`RecoveryError` when the history no longer covers them (trimmed, expired,
        or another epoch).
        """
        ...

    async def position(self, topic: str, history: HistoryPolicy) -> tuple[int, str]:
        """The last offset of ``topic`` and its epoch (0 when nothing was published yet)."""
        ...


@runtime_checkable
class PresenceStore(Protocol):
    """The presence role: who is subscribed to a topic, on every instance."""

    async def presence_add(self, topic: str, member: Member) -> None:
        """Record ``member`` in ``topic`` as one of this instance's."""
        ...

    async def presence_remove(self, topic: str, client_id: str) -> None:
        """Forget ``client_id`` in ``topic``."""
        ...

    async def presence(self, topic: str) -> list[Member]:
        """Members of ``topic`` across every live instance."""
        ...


@runtime_checkable
class UserControl(Protocol):
    """The user-control role: reach, close and ban a user's connections on every instance."""

    async def send_to_user(self, user_id: str, data: bytes) -> None:
        """Deliver ``data`` to every connection of ``user_id`` on every instance."""
        ...

    async def disconnect_user(self, user_id: str, code: int, reason: str) -> None:
        """Close every connection of ``user_id`` on every instance."""
        ...

    async def ban(self, user_id: str, ttl_s: float | None = None) -> None:
        """Refuse ``user_id``'s new connections everywhere (for ``ttl_s`` seconds, or until unbanned)."""
        ...

    async def unban(self, user_id: str) -> None:
        """Let ``user_id`` connect again."""
        ...

    async def is_banned(self, user_id: str) -> bool:
        """Whether ``user_id`` is banned now."""
        ...


@runtime_checkable
class Broker(PubSubBroker, HistoryStore, PresenceStore, UserControl, Protocol):
    """A broker that plays every role: what :class:`~wskit.pubsub.memory.MemoryBroker` and
    :class:`~wskit.pubsub.redis.RedisBroker` are, and what the server takes."""


class Role(StrEnum):
    """The roles a broker may play (see the module docstring for what each one needs)."""

    PUBSUB = "pub/sub"
    HISTORY = "history"
    PRESENCE = "presence"
    USERS = "user control"


#: The protocol of each role, and how a broker that lacks it is described.
_ROLES: Final[dict[Role, tuple[type, str]]] = {
    Role.PUBSUB: (PubSubBroker, "carries no publications"),
    Role.HISTORY: (HistoryStore, "keeps no history"),
    Role.PRESENCE: (PresenceStore, "keeps no presence"),
    Role.USERS: (UserControl, "has no user control"),
}


def roles_of(broker: object) -> frozenset[Role]:
    """The roles ``broker`` plays: those whose every method it has.

    The check is by name, as ``isinstance`` with a protocol is: a method that exists but is
    wrong is found by the conformance suite (:mod:`wskit.testing.brokers`), not here.
    """
    return frozenset(role for role, (protocol, _) in _ROLES.items() if isinstance(broker, protocol))


def missing_roles(broker: object, needs: Mapping[Role, str]) -> list[str]:
    """One sentence for each role in ``needs`` that ``broker`` does not play; empty when it plays them all.

    ``needs`` maps a role to what needs it, as the reader should see it::

        missing_roles(broker, {Role.HISTORY: "router.enable_history('room:*')"})
        # ["broker MyBroker keeps no history, but router.enable_history('room:*') needs it"]

    The broker is named by its class (its ``repr`` may hold a URL with a password).
    """
    plays = roles_of(broker)
    name = type(broker).__name__
    return [
        f"broker {name} {_ROLES[role][1]}, but {need} needs it" for role, need in needs.items() if role not in plays
    ]
