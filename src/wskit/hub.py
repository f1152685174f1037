"""The local registry: live connections, topic members, users, and the broker behind them.

Fan-out is synchronous and serialisation-free: the broker hands the hub one publication,
the hub builds its frame once and writes the same bytes to each local member's queue
without awaiting any socket. For topics with history the hub also remembers, per
connection, the last position it delivered, so recovery and live delivery meet without a
gap or a duplicate — and when a gap cannot be avoided (the broker lost publications its
history no longer holds), the connection is told with ``FAILED_PRECONDITION``
``{reason: "recovery", topic}`` instead of silently receiving later offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from wskit.connection import Connection, OverflowPolicy
from wskit.errors import ErrorCode, WsKitError
from wskit.protocol import PRESENCE_TYPE, Position, Step, dumps, step, type_prefix
from wskit.pubsub.broker import Broker, HistoryPolicy, Member, Publication, Role, lost_frame, roles_of
from wskit.pubsub.memory import MemoryBroker

__all__ = ["Hub"]

log = logging.getLogger("wskit.hub")


#: distinct message types whose deliveries are counted apart (the rest only in ``delivered``)
_MAX_HEADS = 500


#: where a frame's type name starts: after ``{"type":"``
_TYPE_AT = len(b'{"type":"')


def _send_lost(conn: Connection, data: bytes) -> None:
    """Queue a ``FAILED_PRECONDITION`` recovery error (counted as an error sent)."""
    telemetry = conn.telemetry
    if conn.send_nowait(data) and telemetry is not None and telemetry.counting:
        telemetry.error_sent(ErrorCode.FAILED_PRECONDITION.value, False)


def _never(topic: str) -> bool:
    return False


def _default_public(data: Mapping[str, Any]) -> Mapping[str, Any]:
    public = data.get("public")
    return dict(public) if isinstance(public, Mapping) else {}


class Hub:
    """Connections by client id and by user, topic members, for one process."""

    def __init__(
        self, broker: Broker | None = None, *, instance: str = "", announces: Callable[[str], bool] | None = None
    ) -> None:
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        #: the broker keeps presence (a third-party broker may not: then none is recorded)
        self.keeps_presence = Role.PRESENCE in roles_of(self.broker)
        self.instance = instance
        self.connections: dict[str, Connection] = {}
        self.members: dict[str, set[Connection]] = {}
        self.users: dict[str, set[Connection]] = {}
        #: picks the part of a connection's data that presence shows to others
        self.public_data: Callable[[Mapping[str, Any]], Mapping[str, Any]] = _default_public
        #: topics whose joins and leaves are published to the topic as ``$ws:presence``
        #: (the router's ``enable_presence_events`` patterns)
        self.announces: Callable[[str], bool] = announces if announces is not None else _never
        self.delivered = 0
        #: deliveries per message type, keyed by the publication's ``{"type":"X"`` head
        #: (telemetry turns them into type labels when scraped)
        self.delivered_heads: dict[bytes, int] = {}
        #: history policy of each topic with local members (a new broker resubscribes with it)
        self.topic_history: dict[str, HistoryPolicy | None] = {}
        #: members of each topic that subscribed themselves (``$ws:subscribe``): their
        #: deliveries carry ``meta.topic`` even without history (``Publication.tagged_frame``)
        self.tagged: dict[str, set[Connection]] = {}
        self._started = False

    async def start(self) -> None:
        """Connect the broker to this hub (idempotent)."""
        if not self._started:
            self._started = True
            await self.broker.start(self)

    async def set_broker(self, broker: Broker) -> None:
        """Use ``broker`` from now on (before serving; topics with members re-subscribe)."""
        if broker is self.broker:
            return
        old, self.broker = self.broker, broker
        self.keeps_presence = Role.PRESENCE in roles_of(broker)
        if self._started:
            await old.close()
            self._started = False
        await self.start()
        for topic in self.members:
            await broker.subscribe(topic, self.topic_history.get(topic))

    # -- connections and users -------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections[conn.client_id] = conn
        user = _user_str(conn.user_id)
        if user is not None:
            self.users.setdefault(user, set()).add(conn)

    def rebind_user(self, conn: Connection, old: Any, new: Any) -> None:
        """Keep the user index right when a connection's ``user_id`` changes."""
        old, new = _user_str(old), _user_str(new)
        if old == new or (new is not None and conn.client_id not in self.connections):
            return
        if old is not None:
            conns = self.users.get(old)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.users[old]
        if new is not None:
            self.users.setdefault(new, set()).add(conn)

    async def remove(self, conn: Connection) -> None:
        """Forget a closed connection, leave its topics and presence."""
        if self.connections.pop(conn.client_id, None) is None:
            return
        self.rebind_user(conn, conn.user_id, None)
        for topic in list(conn.topics):
            await self.unsubscribe(conn, topic)

    # -- topics ----------------------------------------------------------------------------

    async def subscribe(self, conn: Connection, topic: str, history: HistoryPolicy | None = None) -> bool:
        """Add ``conn`` to ``topic``; False when it was already a member."""
        if topic in conn.topics:
            return False
        members = self.members.get(topic)
        if members is None:
            # first local member: the broker must start carrying this topic here first
            await self.broker.subscribe(topic, history)
            members = self.members.setdefault(topic, set())
            self.topic_history[topic] = history
        members.add(conn)
        if isinstance(conn.topics, frozenset):
            conn.topics = set()
        conn.topics.add(topic)
        member = Member(conn.client_id, _user_str(conn.user_id), self.public_data(conn.data), self.instance)
        try:
            if self.keeps_presence:
                await self.broker.presence_add(topic, member)
            if self.announces(topic):
                await self.broker.publish(_presence_event(topic, "join", member))
        except Exception as exc:  # noqa: BLE001 - presence is best effort; membership stands
            log.warning("presence for %s in %s not recorded: %s", conn.client_id, topic, exc)
        return True

    async def join(
        self,
        conn: Connection,
        topic: str,
        history: HistoryPolicy | None,
        offset: int | None = None,
        epoch: str | None = None,
    ) -> Position | None:
        """Make ``conn`` a member of ``topic`` (its name, limits and access already checked);
        with history, its position, after delivering what it missed since ``offset`` of
        ``epoch`` when given (``ctx.subscribe``).

        Raises the broker's ``RecoveryError`` (``FAILED_PRECONDITION``) when the history no
        longer covers the gap, or ``UNAVAILABLE`` when the broker cannot be reached.

        A connection that is already a member gets its current position whatever ``offset``
        it gives: it was sent every publication since it joined, so nothing is replayed (a
        repeated subscribe from offset 0 must not re-send the history each time), and its
        membership, made by a handler or a subscribe, is never lost to a failed recovery.
        """
        if history is None:
            await self.subscribe(conn, topic)
            return None
        if topic in conn.topics:
            found = conn.positions.get(topic)
            if isinstance(found, (Position, list)):  # a position, or a recovery in progress
                return found if isinstance(found, Position) else None
            # told of a gap (position dropped) and nothing delivered since: where the topic is now
            last, current_epoch = await self.broker.position(topic, history)
            delivered = conn.positions.get(topic)
            if isinstance(delivered, Position):
                return delivered  # a publication arrived meanwhile: it is the position
            current = conn.positions[topic] = Position(last, current_epoch)
            return current
        return await self._join_history(conn, topic, history, offset, epoch)

    async def _join_history(
        self, conn: Connection, topic: str, history: HistoryPolicy, offset: int | None, epoch: str | None
    ) -> Position:
        buffer: list[Publication] = []
        conn.positions[topic] = buffer  # live publications wait here until we know where to start
        try:
            await self.subscribe(conn, topic, history)
            if offset is None or epoch is None:
                last, current_epoch = await self.broker.position(topic, history)
                missed: list[Publication] = []
                start = Position(last, current_epoch)
            else:
                missed = await self._recover(conn, topic, offset, epoch, history)
                start = Position(offset, epoch)
        except BaseException:
            conn.positions.pop(topic, None)
            await self.unsubscribe(conn, topic)
            raise
        # from here to the end nothing awaits, so no publication can slip in between
        position = start
        for pub in [*missed, *buffer]:
            if pub.offset is None or pub.epoch is None:
                continue  # not a history publication (a broker that returns such is wrong)
            seen = step(position, pub.offset, pub.epoch)
            if seen is Step.DUPLICATE:
                continue
            if seen is Step.GAP:
                # the broker's history and the live stream did not meet: say so, as deliver()
                # does (an ERROR of its own: the subscribe's RPC, if any, is not what failed)
                _send_lost(conn, lost_frame(topic))
            if pub.exclude != conn.client_id and conn.send_nowait(pub.frame()):
                self._count_head(pub.head, 1)
            position = Position(pub.offset, pub.epoch)
        conn.positions[topic] = position
        return position

    async def _recover(
        self, conn: Connection, topic: str, offset: int, epoch: str, history: HistoryPolicy
    ) -> list[Publication]:
        """What ``conn`` missed since ``offset`` of ``epoch``, counted as a recovery (or a failed one)."""
        telemetry = conn.telemetry if conn.telemetry is not None and conn.telemetry.counting else None
        try:
            missed = await self.broker.recover(topic, offset, epoch, history)
        except WsKitError as exc:
            if telemetry is not None and exc.code == ErrorCode.FAILED_PRECONDITION:
                telemetry.recoveries["failed"] += 1
            raise
        if telemetry is not None:
            telemetry.recoveries["recovered"] += 1
        return missed

    def tag(self, conn: Connection, topic: str) -> None:
        """Deliver ``topic`` to ``conn`` with ``meta.topic`` (it speaks ``$ws:subscribe``).

        Set before the join, so no delivery can reach it untagged; :meth:`unsubscribe` clears it.
        """
        self.tagged.setdefault(topic, set()).add(conn)

    def untag(self, conn: Connection, topic: str) -> None:
        """Undo :meth:`tag` (a client subscription that failed on a topic ``conn`` stays in)."""
        tagged = self.tagged.get(topic)
        if tagged is not None:
            tagged.discard(conn)
            if not tagged:
                del self.tagged[topic]

    async def unsubscribe(self, conn: Connection, topic: str) -> bool:
        """Remove ``conn`` from ``topic``; False when it was not a member."""
        self.untag(conn, topic)
        if topic not in conn.topics or isinstance(conn.topics, frozenset):
            return False
        conn.topics.discard(topic)
        conn.positions.pop(topic, None)
        members = self.members.get(topic)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.members[topic]
                self.topic_history.pop(topic, None)
                await self.broker.unsubscribe(topic)
        try:
            if self.keeps_presence:
                await self.broker.presence_remove(topic, conn.client_id)
            if self.announces(topic):
                member = Member(conn.client_id, _user_str(conn.user_id), self.public_data(conn.data), self.instance)
                await self.broker.publish(_presence_event(topic, "leave", member))
        except Exception as exc:  # noqa: BLE001 - an expired entry goes away with its TTL
            log.warning("presence for %s in %s not removed: %s", conn.client_id, topic, exc)
        return True

    async def publish(self, publication: Publication, history: HistoryPolicy | None = None) -> None:
        if not self._started:
            await self.start()  # publishing before any server started must not vanish
        await self.broker.publish(publication, history)

    # -- BrokerListener ----------------------------------------------------------------------

    def deliver(self, publication: Publication) -> None:
        """Write one publication to every local member of its topic (not ``exclude``)."""
        members = self.members.get(publication.topic)
        if not members:
            return
        data = publication.frame()
        exclude = publication.exclude
        overflow = publication.overflow
        if overflow is not None and overflow.__class__ is not OverflowPolicy:
            overflow = _overflow_policy(overflow)  # it crossed a broker as text
        count = 0
        tagged = self.tagged.get(publication.topic) if publication.offset is None else None
        if tagged is not None:
            # some members subscribed themselves: they get the frame that names the topic
            named = publication.tagged_frame()
            for conn in members:
                if conn.client_id != exclude and conn.send_nowait(named if conn in tagged else data, overflow):
                    count += 1
        elif publication.offset is None:
            # send_nowait never changes membership synchronously: no copy of the set needed
            for conn in members:
                if conn.client_id != exclude and conn.send_nowait(data, overflow):
                    count += 1
        else:
            for conn in members:
                if self._advance(conn, publication) and conn.client_id != exclude and conn.send_nowait(data, overflow):
                    count += 1
        self.delivered += count
        self._count_head(publication.head, count)

    def _count_head(self, head: bytes, count: int) -> None:
        """``count`` frames starting with ``head`` (``{"type":"X"``) were queued: by type for
        the metrics, which turn heads into type labels when scraped."""
        heads = self.delivered_heads
        if head in heads:
            heads[head] += count
        elif len(heads) < _MAX_HEADS:
            heads[head] = count

    @staticmethod
    def _advance(conn: Connection, publication: Publication) -> bool:
        """Record ``publication`` as this connection's position; False for a duplicate.

        A publication that skips offsets of the connection's epoch means some were lost on
        the way: the connection gets the recovery error first, then this one and the next
        ones from its new position (it knows to reload, or to re-subscribe from here).
        """
        topic = publication.topic
        position = conn.positions.get(topic)
        if isinstance(position, list):
            position.append(publication)  # recovering: sent after the missed ones
            return False
        epoch, offset = publication.epoch, publication.offset
        assert epoch is not None and offset is not None
        seen = step(position, offset, epoch)
        if seen is Step.DUPLICATE:
            return False
        if seen is Step.GAP:
            assert position is not None
            # the wire carries the error; one line per connection would flood a big topic's log
            log.debug("client %s missed offsets %d-%d of %s", conn.client_id, position.offset + 1, offset - 1, topic)
            _send_lost(conn, lost_frame(topic))
        conn.positions[topic] = Position(offset, epoch)
        return True

    def lost(self, topic: str) -> None:
        """The broker lost publications of ``topic`` that its history no longer holds.

        Every local member with a position in it gets ``FAILED_PRECONDITION`` ``{reason:
        "recovery", topic}`` (what re-subscribing from that position would answer) and its
        position is dropped: what it receives next starts a new position, and re-subscribing
        with the old one fails the same way, so it reloads. A member still recovering has
        the live publications it buffered thrown away, so they are not spliced onto the
        recovered ones across the gap.
        """
        members = self.members.get(topic)
        if not members:
            return
        data = lost_frame(topic)
        for conn in members:
            position = conn.positions.get(topic)
            if position is None:
                continue  # already told, nothing delivered since
            if isinstance(position, list):
                position.clear()
            else:
                del conn.positions[topic]
            _send_lost(conn, data)

    def deliver_to_user(self, user_id: str, data: bytes) -> None:
        sent = 0
        for conn in list(self.users.get(user_id, ())):
            if conn.send_nowait(data):
                sent += 1
        if sent:
            # frames are built as {"type":"X",...}: the head is up to the type's closing quote
            self._count_head(data[: data.find(b'"', _TYPE_AT) + 1], sent)

    def disconnect_user(self, user_id: str, code: int, reason: str) -> None:
        for conn in list(self.users.get(user_id, ())):
            conn.close_soon(code, reason)

    async def close(self) -> None:
        await self.broker.close()
        self._started = False


_PRESENCE_PREFIX = type_prefix(PRESENCE_TYPE)


def _presence_event(topic: str, event: str, member: Member) -> Publication:
    payload = {
        "topic": topic,
        "event": event,
        "clientId": member.client_id,
        "userId": member.user_id,
        "data": dict(member.data),
    }
    return Publication(topic, _PRESENCE_PREFIX, b',"payload":' + dumps(payload) + b"}")


def _overflow_policy(value: Any) -> OverflowPolicy | None:
    """The policy a publication carried as text; an unknown one (a newer peer's) leaves the connection's."""
    try:
        return OverflowPolicy(value)
    except ValueError:
        log.debug("unknown overflow policy %r on a publication: the connection's own applies", value)
        return None


def _user_str(user: Any) -> str | None:
    return None if user is None else str(user)
