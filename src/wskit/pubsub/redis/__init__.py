"""The Redis broker: many server processes behind one Redis, with history and presence.

:class:`RedisBroker` plays every role of :class:`~wskit.pubsub.broker.Broker` with one small
object per role, sharing one :class:`~wskit.pubsub.redis.link.Link`:

- :mod:`~wskit.pubsub.redis.link` (pub/sub): the command pool, the one subscriber link per
  process (subscribed only to topics with local members), its state, reconnection with
  backoff, and the heartbeat;
- :mod:`~wskit.pubsub.redis.history` (history): offsets, epochs and streams, recovery, and
  the catch-up that leaves no gap after an outage;
- :mod:`~wskit.pubsub.redis.presence` (presence): members per topic across live instances;
- :mod:`~wskit.pubsub.redis.users` (user control): send to a user, disconnect, bans.

This module assembles them and routes what the link reads: control messages to the user
controls, publications of history topics through the history's ordering, the rest straight
to the listener.

**Fail fast, grow nothing.** When the link is down, publishes raise ``UNAVAILABLE`` at once
(and every command is bounded by ``publish_timeout_s``); nothing is queued for later.
Publications of topics *without* history still reach this process's own subscribers before
the error is raised ("local delivery keeps working"); a history publication cannot get an
offset without Redis, so it is refused whole.
"""

from __future__ import annotations

try:
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("RedisBroker needs redis-py: pip install 'wskit[redis]'") from exc

import asyncio
import functools
import json
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from wskit.errors import WsKitError
from wskit.protocol import Position
from wskit.pubsub.broker import BrokerListener, BrokerState, HistoryPolicy, Member, Publication
from wskit.pubsub.redis.history import History
from wskit.pubsub.redis.link import Link
from wskit.pubsub.redis.presence import Presence
from wskit.pubsub.redis.users import Users

__all__ = ["RedisBroker"]

log = logging.getLogger("wskit.pubsub.redis")

T = TypeVar("T")


def _default_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class RedisBroker:
    """A :class:`~wskit.pubsub.broker.Broker` shared by every process that uses the same Redis.

    ``url`` is a redis-py URL; ``namespace`` prefixes every key and channel (several apps, or
    tests, can share one Redis). ``instance_id`` names this process in presence (default:
    host, pid and a random suffix). Presence entries of an instance vanish ``presence_ttl_s``
    after it stops refreshing them every ``heartbeat_s``. Every Redis command gives up after
    ``publish_timeout_s`` with ``WsKitError(UNAVAILABLE)``. After a lost link, reconnection
    waits a random delay up to ``backoff_min_s * 2**n``, capped at ``backoff_max_s``.
    Commands share at most ``max_connections`` connections (besides the subscriber link);
    more concurrent commands wait for one, within their ``publish_timeout_s``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "wskit",
        instance_id: str | None = None,
        presence_ttl_s: float = 30.0,
        heartbeat_s: float = 10.0,
        publish_timeout_s: float = 2.0,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
        max_connections: int = 50,
    ) -> None:
        if presence_ttl_s <= 0 or heartbeat_s <= 0 or publish_timeout_s <= 0:
            raise ValueError("presence_ttl_s, heartbeat_s and publish_timeout_s must be > 0")
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.max_connections = max_connections
        self.url = url
        self.namespace = namespace
        self._auto_instance = instance_id is None
        self._pid = os.getpid()
        self.presence_ttl_s = presence_ttl_s
        self.heartbeat_s = heartbeat_s
        self.publish_timeout_s = publish_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = max(backoff_max_s, backoff_min_s)
        self._link = Link(
            url,
            namespace=namespace,
            instance_id=instance_id or _default_instance_id(),
            publish_timeout_s=publish_timeout_s,
            heartbeat_s=heartbeat_s,
            max_connections=max_connections,
            backoff=self._backoff,
            on_message=self._on_message,
            catch_up=lambda: self._history.catch_up_all(),
            refresh=lambda full: self._presence.refresh(full),
        )
        # the catch-up reaches _reepoch through the broker, where it can be replaced
        self._history = History(self._link, namespace, reepoch=lambda *args: self._reepoch(*args))
        self._presence = Presence(self._link, namespace, ttl_s=presence_ttl_s)
        self._users = Users(self._link, namespace)
        #: the subscription in flight per topic, shared by every caller meanwhile (see subscribe)
        self._subscribing: dict[str, asyncio.Future[None]] = {}

    @property
    def state(self) -> BrokerState:
        """``READY`` while the subscriber link is up and caught up; ``DOWN`` while it is retried."""
        return self._link.state

    @property
    def instance_id(self) -> str:
        """This process's name in presence (renewed in a forked worker when it was not given)."""
        return self._link.instance_id

    @property
    def reconnects(self) -> int:
        """How many times the link came back after being lost (for metrics and tests)."""
        return self._link.reconnects

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, listener: BrokerListener) -> None:
        """Connect and begin delivering to ``listener``.

        Waits up to ``publish_timeout_s`` for the link; when Redis is not there yet it returns
        anyway (state ``DOWN``) and keeps trying in the background.
        """
        link = self._link
        if link.state is BrokerState.CLOSED:
            raise RuntimeError("this RedisBroker is closed")
        if self._auto_instance and self._pid != os.getpid():
            # built before a fork (serve(workers=N, broker=...)): each worker is its own instance
            self._pid = os.getpid()
            link.instance_id = _default_instance_id()
        link.listener = listener
        if link.client is None:
            self._history.load_scripts(link.open_client())
            link.start_tasks()
        await link.wait_ready()

    async def close(self) -> None:
        """Remove this instance's presence, stop the link and release every connection (idempotent)."""
        if self._link.state is BrokerState.CLOSED:
            return
        was_ready = self._link.state is BrokerState.READY
        await self._link.stop_tasks()
        if was_ready:
            await self._presence.withdraw()
        await self._release()

    async def _crash(self) -> None:
        """Stop as a killed process would: no presence cleanup (tests of TTL expiry use it)."""
        if self._link.state is not BrokerState.CLOSED:
            await self._link.stop_tasks()
            await self._release()

    async def _release(self) -> None:
        self._presence.clear()
        self._history.clear()
        await self._link.release()

    def _backoff(self, failures: int) -> float:
        """The wait before the ``failures``-th reconnection attempt in a row: random, up to
        ``backoff_min_s * 2**(failures - 1)``, at most ``backoff_max_s``."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_min_s * 2 ** (failures - 1)))

    async def _call(self, what: str, fn: Callable[[aioredis.Redis], Awaitable[T]], *, internal: bool = False) -> T:
        """One bounded Redis round trip (see :meth:`Link.call <wskit.pubsub.redis.link.Link.call>`)."""
        return await self._link.call(what, fn, internal=internal)

    # -- publish and subscribe -----------------------------------------------------------------

    async def publish(self, publication: Publication, history: HistoryPolicy | None = None) -> None:
        """Publish to every instance; with ``history``, append to the topic's stream first.

        Raises ``WsKitError(UNAVAILABLE)`` within ``publish_timeout_s`` when Redis cannot take
        it. When the link is known to be down, a topic without history is still delivered to
        this process's subscribers before raising, and the error says so (details
        ``{"delivered": "local"}``); a history topic is refused whole (no offset without Redis).
        When a command fails or times out the outcome is unknown (it may have reached other
        instances), so nothing is delivered here.
        """
        link = self._link
        if link.state is not BrokerState.READY:
            if history is None and link.listener is not None:
                link.listener.deliver(publication)
                raise link.unavailable("publish", local=True)
            raise link.unavailable("publish")
        d = publication.to_dict()
        del d["o"], d["e"]
        body = json.dumps(d, separators=(",", ":"))
        topic = publication.topic
        if history is None:
            await link.call("publish", lambda r: r.publish(link.channel(topic), body))
            return
        await self._history.publish(topic, body, history)

    async def subscribe(self, topic: str, history: HistoryPolicy | None = None) -> None:
        """Start receiving ``topic``; returns once Redis confirmed the subscription.

        While the link is down the topic is only recorded (it is subscribed on reconnect).
        Raises ``WsKitError(UNAVAILABLE)`` when the link fails during the subscription.

        Callers that come while a subscription of the same topic is in flight share it, and its
        outcome: two subscriptions of their own could end one failed (which forgets the topic)
        and one succeeded (whose caller's members then receive nothing).
        """
        pending = self._subscribing.get(topic)
        if pending is None:
            pending = asyncio.ensure_future(self._subscribe(topic, history))
            self._subscribing[topic] = pending
            pending.add_done_callback(functools.partial(self._subscribed, topic))
        await asyncio.shield(pending)  # a cancelled caller does not cancel it for the others

    def _subscribed(self, topic: str, done: asyncio.Future[None]) -> None:
        if self._subscribing.get(topic) is done:
            del self._subscribing[topic]
        if not done.cancelled():
            done.exception()  # retrieved even when every caller was cancelled (no "never retrieved")

    async def _subscribe(self, topic: str, history: HistoryPolicy | None) -> None:
        try:
            confirmed = await self._link.subscribe(topic, history)
        except WsKitError:
            self._history.forget(topic)
            raise
        if confirmed and history is not None:
            try:
                await self._history.track(topic, history)
            except BaseException:
                # the caller is told the subscribe failed, and the hub records no member: the
                # topic must not stay subscribed on the link (it would never be left)
                self._history.forget(topic)
                await self._link.unsubscribe(topic)
                raise

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (the UNSUBSCRIBE is not awaited: late messages are dropped)."""
        self._history.forget(topic)
        await self._link.unsubscribe(topic)

    async def _on_message(self, channel: str, data: bytes) -> None:
        """Route what the link read: user controls, history topics (in order, once), the rest."""
        link = self._link
        listener = link.listener
        if listener is None:
            return
        if channel == link.control:
            self._users.on_control(listener, data)
            return
        topic = link.topic_of(channel)
        if topic not in link.topics:
            return  # unsubscribed while this was in flight: no local member wants it
        try:
            pub = Publication.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("redis broker %s: bad publication on %s dropped (%s)", link.instance_id, channel, exc)
            return
        if pub.offset is None or pub.epoch is None or link.topics[topic] is None:
            listener.deliver(pub)
            return
        await self._history.receive(topic, pub, listener)

    # -- history, presence, users ---------------------------------------------------------------

    async def recover(self, topic: str, offset: int, epoch: str, history: HistoryPolicy) -> list[Publication]:
        """The publications after ``offset`` in ``epoch``, in order; :class:`RecoveryError` when not all are kept."""
        return await self._history.recover(topic, offset, epoch, history)

    async def position(self, topic: str, history: HistoryPolicy) -> tuple[int, str]:
        """The last offset of ``topic`` and its epoch (created, with offset 0, when missing)."""
        return await self._history.position(topic, history)

    async def _reepoch(self, topic: str, tracked: Position, last: int) -> str:
        return await self._history.reepoch(topic, tracked, last)

    async def presence_add(self, topic: str, member: Member) -> None:
        """Record ``member`` (as this instance's); kept locally too, and written again after a Redis loss."""
        await self._presence.add(topic, member)

    async def presence_remove(self, topic: str, client_id: str) -> None:
        """Forget ``client_id`` in ``topic``; raises ``UNAVAILABLE`` when Redis did not confirm it
        (the next presence refresh deletes the entry)."""
        await self._presence.remove(topic, client_id)

    async def presence(self, topic: str) -> list[Member]:
        """Members of ``topic`` whose instance is alive; entries of dead instances are removed on the way."""
        return await self._presence.members(topic)

    async def send_to_user(self, user_id: str, data: bytes) -> None:
        """Deliver ``data`` to ``user_id`` on every instance (only locally, then ``UNAVAILABLE``, when down)."""
        await self._users.send_to_user(user_id, data)

    async def disconnect_user(self, user_id: str, code: int, reason: str) -> None:
        """Close ``user_id``'s connections on every instance (only locally, then ``UNAVAILABLE``, when down)."""
        await self._users.disconnect_user(user_id, code, reason)

    async def ban(self, user_id: str, ttl_s: float | None = None) -> None:
        """Ban ``user_id`` on every instance (for ``ttl_s`` seconds, or until :meth:`unban`)."""
        await self._users.ban(user_id, ttl_s)

    async def unban(self, user_id: str) -> None:
        await self._users.unban(user_id)

    async def is_banned(self, user_id: str) -> bool:
        """Whether ``user_id`` is banned (raises ``UNAVAILABLE`` when Redis cannot tell; callers decide)."""
        return await self._users.is_banned(user_id)

    def __repr__(self) -> str:
        return f"RedisBroker({self.url!r}, namespace={self.namespace!r}, state={self.state})"
