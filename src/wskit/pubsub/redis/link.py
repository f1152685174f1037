"""The Redis broker's connections: a command pool, one subscriber link, and the link's state.

One raw connection carries every ``SUBSCRIBE`` of this process, and only for topics that
have local members; commands (publish, presence, bans...) go through a small blocking pool.
A task keeps the link up: connect, subscribe every channel, wait for each confirmation, let
the broker catch up, go ``READY``, read; when the link fails, go ``DOWN`` and try again after
the broker's backoff. A second task pings the link (a link silent for too long is dropped)
and lets the broker refresh its presence. What the link reads is handed to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from wskit.errors import ErrorCode, WsKitError
from wskit.pubsub.broker import BrokerListener, BrokerState, HistoryPolicy

__all__ = ["Link"]

log = logging.getLogger("wskit.pubsub.redis")

#: stopping the link's tasks: cancel again after each wait this long, this many times at most
_STOP_WAIT_S = 0.1
_STOP_ATTEMPTS = 50

T = TypeVar("T")


class Link:
    """This process's connections to one Redis, and the state readiness reports.

    ``on_message(channel, data)`` receives what the subscriber link reads; ``catch_up()`` runs
    once every channel is subscribed again, before ``READY``; ``refresh(full)`` runs after
    ``READY`` (``full=True``) and on every heartbeat (``full=False``); ``backoff(n)`` is the
    wait before the ``n``-th reconnection attempt in a row.

    The role parts share ``state``, ``listener``, ``client`` and ``topics`` (topics with local
    members and their history policy) through it; they read them, and only the link changes
    ``state``.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        instance_id: str,
        publish_timeout_s: float,
        heartbeat_s: float,
        max_connections: int,
        backoff: Callable[[int], float],
        on_message: Callable[[str, bytes], Awaitable[None]],
        catch_up: Callable[[], Awaitable[None]],
        refresh: Callable[[bool], Awaitable[None]],
    ) -> None:
        self.url = url
        #: this process's name (in presence, log lines and Redis client names)
        self.instance_id = instance_id
        self.publish_timeout_s = publish_timeout_s
        self.heartbeat_s = heartbeat_s
        self.max_connections = max_connections
        self._backoff = backoff
        self._on_message = on_message
        self._catch_up = catch_up
        self._refresh = refresh
        #: the channel of user controls (send to user, disconnect), subscribed on every link
        self.control = f"{namespace}:ctl"
        self._prefix = f"{namespace}:t:"
        self.state = BrokerState.CONNECTING
        self.listener: BrokerListener | None = None
        self.client: aioredis.Redis | None = None
        self._link: AbstractConnection | None = None
        self._link_pending: AbstractConnection | None = None
        self._last_seen = 0.0
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: topics with local members -> their history policy (None: no history)
        self.topics: dict[str, HistoryPolicy | None] = {}
        #: SUBSCRIBE confirmations awaited, per channel, in the order the commands were sent
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        #: channels of the current link whose first SUBSCRIBE confirmation is still awaited
        self._initial: set[str] = set()
        #: how many times the link came back after being lost (for metrics and tests)
        self.reconnects = 0

    # -- names ------------------------------------------------------------------------------

    def channel(self, topic: str) -> str:
        """The pub/sub channel of ``topic``."""
        return self._prefix + topic

    def topic_of(self, channel: str) -> str:
        """The topic of a channel made by :meth:`channel`."""
        return channel[len(self._prefix) :]

    # -- state and commands -----------------------------------------------------------------

    def set_state(self, state: BrokerState, reason: str = "") -> None:
        """Move to ``state`` (logged; nothing leaves ``CLOSED``)."""
        old = self.state
        if old is state or old is BrokerState.CLOSED:
            return
        self.state = state
        level = logging.WARNING if state is BrokerState.DOWN else logging.INFO
        log.log(
            level,
            "redis broker %s: %s -> %s%s",
            self.instance_id,
            old,
            state,
            f" ({reason})" if reason else "",
            extra={"event": "broker_state", "old": str(old), "new": str(state), "reason": reason},
        )
        if state is BrokerState.READY:
            self._ready.set()
        else:
            self._ready.clear()

    def unavailable(self, what: str, exc: BaseException | None = None, *, local: bool = False) -> WsKitError:
        """``UNAVAILABLE``; with ``local``, details ``{"delivered": "local"}``: this instance's
        connections did get it, so a caller that retries blindly would send it to them twice."""
        why = f"{type(exc).__name__}: {exc}" if exc is not None else f"broker is {self.state}"
        details = {"delivered": "local"} if local else None
        return WsKitError(ErrorCode.UNAVAILABLE, f"Redis unavailable, {what} failed ({why})", details=details)

    async def call(self, what: str, fn: Callable[[aioredis.Redis], Awaitable[T]], *, internal: bool = False) -> T:
        """Run one Redis round trip, bounded in time, with errors translated to ``UNAVAILABLE``.

        Callers are refused at once unless the broker is ``READY``; the link itself
        (``internal``) also uses it while it is catching up, before it is ready.
        """
        client = self.client
        if client is None or (not internal and self.state is not BrokerState.READY):
            raise self.unavailable(what)
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                return await fn(client)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self.unavailable(what, exc) from exc

    # -- lifecycle ----------------------------------------------------------------------------

    def open_client(self) -> aioredis.Redis:
        """The command client (its pool connects on first use)."""
        # A blocking pool: past max_connections a command waits for a free connection
        # (within the same publish_timeout_s budget) instead of failing at once with
        # MaxConnectionsError, which the default pool does and which would turn a burst of
        # joins or publishes into UNAVAILABLE answers while Redis is perfectly healthy.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.publish_timeout_s,
            retry=Retry(NoBackoff(), 0),  # we retry ourselves, with backoff, in one place
            socket_connect_timeout=self.publish_timeout_s,
            client_name=f"wskit:{self.instance_id}",
            protocol=2,  # RESP2: pub/sub messages come back as replies, on every redis-py version
        )
        self.client = aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
        return self.client

    def start_tasks(self) -> None:
        """Start keeping the link up, and the heartbeat."""
        self._tasks = [
            asyncio.create_task(self._run_link(), name="wskit-redis-link"),
            asyncio.create_task(self._run_heartbeat(), name="wskit-redis-heartbeat"),
        ]

    async def wait_ready(self) -> None:
        """Wait up to ``publish_timeout_s`` for ``READY`` (returns either way)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.publish_timeout_s):
                await self._ready.wait()

    async def stop_tasks(self) -> None:
        """Go ``CLOSED`` and stop both tasks."""
        self.set_state(BrokerState.CLOSED, "closed")
        self.state = BrokerState.CLOSED
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            # a cancellation can be swallowed on its way (Python 3.11's wait_for, inside the
            # Redis client, when the awaited call completes in the same turn): the task then
            # goes on reading the link and a plain await never returns. Cancel again until it
            # ends, within a bound
            for _ in range(_STOP_ATTEMPTS):
                done, _pending = await asyncio.wait([task], timeout=_STOP_WAIT_S)
                if done:
                    break
                task.cancel()
            else:
                log.warning("redis broker %s: task %s did not stop; left behind", self.instance_id, task.get_name())
                continue
            if not task.cancelled() and task.exception() is not None:
                log.debug("redis broker %s: %s ended with %r", self.instance_id, task.get_name(), task.exception())

    async def release(self) -> None:
        """Forget the listener and the topics, close the link and every pooled connection."""
        self.listener = None
        self.topics.clear()
        await self._drop_link(ConnectionError("broker closed"))
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, topic: str, history: HistoryPolicy | None) -> bool:
        """Record ``topic`` and subscribe its channel; True once Redis confirmed it.

        False when the confirmation is not awaited: no link (the next one subscribes every
        recorded topic), or a link still catching up (the command is sent, not awaited).
        When the link fails meanwhile the topic is forgotten and ``UNAVAILABLE`` raised.
        """
        self.topics[topic] = history
        link = self._link
        channel = self.channel(topic)
        if link is None:
            return False  # the next link subscribes every recorded topic
        if self.state is not BrokerState.READY:
            # a link that is still catching up: subscribe now, the confirmation is not awaited
            with contextlib.suppress(RedisError, OSError):
                await link.send_command("SUBSCRIBE", channel, check_health=False)
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, deque()).append(waiter)
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                await link.send_command("SUBSCRIBE", channel, check_health=False)
                await waiter
        except (RedisError, OSError, TimeoutError, ConnectionError) as exc:
            self.topics.pop(topic, None)
            raise self.unavailable("subscribe", exc) from exc
        return True

    async def unsubscribe(self, topic: str) -> None:
        """Forget ``topic`` and unsubscribe its channel (not awaited: late messages are dropped)."""
        self.topics.pop(topic, None)
        link = self._link
        if link is not None:
            try:
                await link.send_command("UNSUBSCRIBE", self.channel(topic), check_health=False)
            except (RedisError, OSError) as exc:
                log.debug("redis broker %s: unsubscribe %s not sent (%s)", self.instance_id, topic, exc)

    # -- the subscriber link ------------------------------------------------------------------

    async def _run_link(self) -> None:
        """Keep the subscriber link up: connect, subscribe, catch up, read; on failure back off."""
        failures = 0
        while True:
            try:
                await self._open_link()
                failures = 0
                await self._read_link()
                reason = "link closed"
            except (RedisError, OSError, TimeoutError, WsKitError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # the link must outlive any bug downstream (logged with its traceback)
                log.exception("redis broker %s: unexpected error on the link", self.instance_id)
                reason = f"{type(exc).__name__}: {exc}"
            await self._drop_link(ConnectionError(reason))
            self.set_state(BrokerState.DOWN, reason)
            failures += 1
            delay = self._backoff(failures)
            log.debug("redis broker %s: reconnect attempt %d in %.3fs", self.instance_id, failures, delay)
            await asyncio.sleep(delay)

    async def _open_link(self) -> None:
        assert self.client is not None
        pool = self.client.connection_pool
        kwargs = {**pool.connection_kwargs, "socket_timeout": None, "client_name": f"wskit:{self.instance_id}:sub"}
        conn: AbstractConnection = pool.connection_class(**kwargs)
        self._link_pending = conn  # so that _drop_link can close a half-open link
        async with asyncio.timeout(self.publish_timeout_s):
            await conn.connect()  # type: ignore[no-untyped-call]
        channels = [self.control, *map(self.channel, self.topics)]
        await conn.send_command("SUBSCRIBE", *channels, check_health=False)
        self._link = conn
        self._last_seen = time.monotonic()
        # topics added while the SUBSCRIBE above was being sent were not in it
        late = [self.channel(t) for t in self.topics if self.channel(t) not in channels]
        if late:
            await conn.send_command("SUBSCRIBE", *late, check_health=False)
        self._initial = set(channels)

    async def _read_link(self) -> None:
        """Read the link until it fails; become ``READY`` once every channel is confirmed and caught up."""
        conn = self._link
        assert conn is not None
        while True:
            msg = await conn.read_response()
            self._last_seen = time.monotonic()
            if not isinstance(msg, list) or not msg:
                continue
            kind = msg[0]
            if kind == b"message":
                await self._on_message(msg[1].decode(), msg[2])
            elif kind == b"subscribe":
                channel = msg[1].decode()
                waiters = self._waiters.get(channel)
                if waiters:
                    waiter = waiters.popleft()
                    if not waiters:
                        del self._waiters[channel]
                    if not waiter.done():
                        waiter.set_result(None)
                initial = self._initial
                if initial:
                    initial.discard(channel)
                    if not initial:
                        await self._link_ready()
                if channel != self.control and self.topic_of(channel) not in self.topics:
                    # the last local member left while the SUBSCRIBE was in flight
                    await conn.send_command("UNSUBSCRIBE", channel, check_health=False)

    async def _link_ready(self) -> None:
        """Every channel is subscribed again: recover what was missed, restore presence, go ``READY``."""
        recovered = self.state is BrokerState.DOWN
        await self._catch_up()
        if recovered:
            self.reconnects += 1
        self.set_state(BrokerState.READY, "reconnected" if recovered else "connected")
        await self._refresh(True)

    async def _drop_link(self, error: BaseException) -> None:
        self._initial = set()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
                    waiter.exception()  # its subscriber may be gone: no "never retrieved" noise
        self._waiters.clear()
        conns = {self._link, self._link_pending}
        self._link = self._link_pending = None
        for conn in conns:
            if conn is not None:
                await conn.disconnect(nowait=True)

    # -- heartbeat ----------------------------------------------------------------------------

    async def _run_heartbeat(self) -> None:
        """Ping the link to notice a silent death, and let the broker refresh its presence TTLs."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if self.state is not BrokerState.READY:
                continue
            link = self._link
            if link is not None:
                silent = time.monotonic() - self._last_seen
                if silent > 2 * self.heartbeat_s + self.publish_timeout_s:
                    log.warning("redis broker %s: link silent for %.1fs, reconnecting", self.instance_id, silent)
                    await link.disconnect(nowait=True)
                    continue
                try:
                    await link.send_command("PING", check_health=False)
                except (RedisError, OSError) as exc:
                    log.debug("redis broker %s: link ping failed (%s)", self.instance_id, exc)
            await self._refresh(False)
