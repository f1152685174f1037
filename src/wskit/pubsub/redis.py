"""The Redis broker: many server processes behind one Redis, with history and presence.

Why it is built this way:

- **One subscriber link per process.** A single raw Redis connection carries every
  ``SUBSCRIBE`` of this process, and only for topics that have local members (the hub calls
  :meth:`RedisBroker.subscribe` for the first member and :meth:`RedisBroker.unsubscribe`
  after the last). Commands (publish, presence, bans...) go through a small pool.
- **History in one atomic step.** For a topic with history, one Lua script assigns the next
  offset, creates the epoch when missing, appends to a Redis Stream trimmed by length and
  age, refreshes the TTLs and publishes the publication *with* its offset and epoch. So
  offsets follow publish order and no subscriber can see ``n + 1`` before ``n``.
- **No gap after an outage.** The reader remembers, per history topic, the last offset it
  handed to the hub. After the link comes back (and on any live message that skips
  offsets) it reads what it missed from the stream before going on, in the reader task
  itself, so the hub receives each topic in order and without duplicates. What the stream
  no longer holds is reported (``BrokerListener.lost``), never skipped silently.
- **Fail fast, grow nothing.** When the link is down, publishes raise ``UNAVAILABLE`` at
  once (and every command is bounded by ``publish_timeout_s``); nothing is queued for
  later. Publications of topics *without* history still reach this process's own
  subscribers before the error is raised ("local delivery keeps working"); a history
  publication cannot get an offset without Redis, so it is refused whole.

The module is larger than the house median: the link state machine, the catch-up and the
three Lua scripts only make sense read together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

try:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("RedisBroker needs redis-py: pip install 'wskit[redis]'") from exc

from wskit.errors import ErrorCode, WsKitError
from wskit.protocol import Position, Step, step
from wskit.pubsub.broker import (
    BrokerListener,
    BrokerState,
    HistoryPolicy,
    Member,
    Publication,
    RecoveryError,
)

__all__ = ["RedisBroker"]

log = logging.getLogger("wskit.pubsub.redis")

T = TypeVar("T")

#: Offsets and epochs outlive the stream entries (a day at least), so that a client that
#: missed nothing on an idle topic can resume without reloading its state.
_META_TTL_MS = 86_400_000

#: Presence removals that Redis did not confirm are retried on every refresh; past this many
#: pending ones (a long outage with heavy churn) further ones are only logged, and their
#: entries stay until this instance stops (its entries then expire with it).
_MAX_UNREMOVED = 100_000

# KEYS: seq, epoch, stream. ARGV: max_len, ttl_ms, meta_ttl_ms, new_epoch, channel, body.
# ``body`` is the publication's JSON without its closing brace, so the offset and epoch are
# appended without decoding it; the stream keeps ``body`` and the offset.
_PUBLISH_LUA = """
local epoch = redis.call('GET', KEYS[2])
if (not epoch) or redis.call('EXISTS', KEYS[1]) == 0 then
  epoch = ARGV[4]
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[1], 0)
  redis.call('DEL', KEYS[3])
end
local offset = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[1], '*', 'o', offset, 'p', ARGV[6])
local t = redis.call('TIME')
local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[2])
if minid > 0 then redis.call('XTRIM', KEYS[3], 'MINID', string.format('%d', minid)) end
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ',"o":' .. string.format('%d', offset) .. ',"e":"' .. epoch .. '"}')
return offset
"""

# KEYS: seq, epoch, stream. ARGV: new_epoch, meta_ttl_ms. Returns {last, epoch}.
_POSITION_LUA = """
local epoch = redis.call('GET', KEYS[2])
local seq = redis.call('GET', KEYS[1])
if (not epoch) or (not seq) then
  epoch = ARGV[1]
  seq = '0'
  redis.call('SET', KEYS[2], epoch, 'PX', ARGV[2])
  redis.call('SET', KEYS[1], 0, 'PX', ARGV[2])
  redis.call('DEL', KEYS[3])
end
return {tonumber(seq), epoch}
"""

# KEYS: seq, epoch, stream. ARGV: the epoch seen, the offset already delivered, new epoch, ttl_ms.
# Redis came back from an older state (RDB snapshot, lazy fsync): same epoch, but its counter
# is behind what was delivered. Offsets would repeat; a new epoch tells every client to reload.
_REEPOCH_LUA = """
local epoch = redis.call('GET', KEYS[2])
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch == ARGV[1] and seq < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  redis.call('DEL', KEYS[3])
  return ARGV[3]
end
return epoch or ''
"""

# KEYS: seq, epoch, stream. ARGV: offset, epoch, max_len, ttl_ms.
# Returns {epoch or '', last, newest entries after offset (all of them in another epoch)}.
_READ_LUA = """
local epoch = redis.call('GET', KEYS[2])
local seq = redis.call('GET', KEYS[1])
if (not epoch) or (not seq) then return {'', 0, {}} end
local last = tonumber(seq)
local from = tonumber(ARGV[1])
if epoch ~= ARGV[2] then from = 0 end
if from < 0 or from >= last then return {epoch, last, {}} end
local t = redis.call('TIME')
local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4])
if minid > 0 then redis.call('XTRIM', KEYS[3], 'MINID', string.format('%d', minid)) end
local count = math.min(last - from, tonumber(ARGV[3]))
return {epoch, last, redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', count)}
"""


def _new_epoch() -> str:
    return uuid.uuid4().hex[:12]


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
        self.instance_id = instance_id or _default_instance_id()
        self._auto_instance = instance_id is None
        self._pid = os.getpid()
        self.presence_ttl_s = presence_ttl_s
        self.heartbeat_s = heartbeat_s
        self.publish_timeout_s = publish_timeout_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = max(backoff_max_s, backoff_min_s)
        self._ctl = f"{namespace}:ctl"
        self._prefix = f"{namespace}:t:"
        self._state = BrokerState.CONNECTING
        self._listener: BrokerListener | None = None
        self._client: aioredis.Redis | None = None
        self._link: AbstractConnection | None = None
        self._last_seen = 0.0
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: topics with local members -> their history policy (None: no history)
        self._topics: dict[str, HistoryPolicy | None] = {}
        #: per history topic: the position of the last publication handed to the listener
        self._tracked: dict[str, Position] = {}
        #: the subscription in flight per topic, shared by every caller meanwhile (see subscribe)
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        #: SUBSCRIBE confirmations awaited, per channel, in the order the commands were sent
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        #: this instance's presence entries (re-registered after Redis lost them)
        self._present: dict[str, dict[str, str]] = {}
        #: per topic, client ids removed locally whose HDEL Redis did not confirm: a refresh
        #: deletes them, or a member who left during an outage would stay listed for as long
        #: as this instance lives (its heartbeat keeps the topic's hash alive)
        self._unremoved: dict[str, set[str]] = {}
        self._unremoved_count = 0
        self._scripts: dict[str, Any] = {}
        self._link_pending: AbstractConnection | None = None
        #: channels of the current link whose first SUBSCRIBE confirmation is still awaited
        self._initial: set[str] = set()
        #: how many times the link came back after being lost (for metrics and tests)
        self.reconnects = 0

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> BrokerState:
        """``READY`` while the subscriber link is up and caught up; ``DOWN`` while it is retried."""
        return self._state

    def _set_state(self, state: BrokerState, reason: str = "") -> None:
        old = self._state
        if old is state or old is BrokerState.CLOSED:
            return
        self._state = state
        level = logging.WARNING if state is BrokerState.DOWN else logging.INFO
        log.log(level, "redis broker %s: %s -> %s%s", self.instance_id, old, state, f" ({reason})" if reason else "")
        if state is BrokerState.READY:
            self._ready.set()
        else:
            self._ready.clear()

    def _unavailable(self, what: str, exc: BaseException | None = None, *, local: bool = False) -> WsKitError:
        """``UNAVAILABLE``; with ``local``, details ``{"delivered": "local"}``: this instance's
        connections did get it, so a caller that retries blindly would send it to them twice."""
        why = f"{type(exc).__name__}: {exc}" if exc is not None else f"broker is {self._state}"
        details = {"delivered": "local"} if local else None
        return WsKitError(ErrorCode.UNAVAILABLE, f"Redis unavailable, {what} failed ({why})", details=details)

    async def _call(self, what: str, fn: Callable[[aioredis.Redis], Awaitable[T]], *, internal: bool = False) -> T:
        """Run one Redis round trip, bounded in time, with errors translated to ``UNAVAILABLE``.

        Callers are refused at once unless the broker is ``READY``; the link itself
        (``internal``) also uses it while it is catching up, before it is ready.
        """
        client = self._client
        if client is None or (not internal and self._state is not BrokerState.READY):
            raise self._unavailable(what)
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                return await fn(client)
        except (RedisError, OSError, TimeoutError) as exc:
            raise self._unavailable(what, exc) from exc

    # -- keys ------------------------------------------------------------------------------

    def _channel(self, topic: str) -> str:
        return self._prefix + topic

    def _history_keys(self, topic: str) -> list[str]:
        ns = self.namespace
        return [f"{ns}:seq:{topic}", f"{ns}:e:{topic}", f"{ns}:h:{topic}"]

    def _presence_key(self, topic: str) -> str:
        return f"{self.namespace}:p:{topic}"

    def _instance_key(self, instance: str) -> str:
        return f"{self.namespace}:i:{instance}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, listener: BrokerListener) -> None:
        """Connect and begin delivering to ``listener``.

        Waits up to ``publish_timeout_s`` for the link; when Redis is not there yet it returns
        anyway (state ``DOWN``) and keeps trying in the background.
        """
        if self._state is BrokerState.CLOSED:
            raise RuntimeError("this RedisBroker is closed")
        if self._auto_instance and self._pid != os.getpid():
            # built before a fork (serve(workers=N, broker=...)): each worker is its own instance
            self._pid = os.getpid()
            self.instance_id = _default_instance_id()
        self._listener = listener
        if self._client is None:
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
            self._client = aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
            scripts = (
                ("publish", _PUBLISH_LUA),
                ("position", _POSITION_LUA),
                ("read", _READ_LUA),
                ("reepoch", _REEPOCH_LUA),
            )
            for name, lua in scripts:
                self._scripts[name] = self._client.register_script(lua)
            self._tasks = [
                asyncio.create_task(self._run_link(), name="wskit-redis-link"),
                asyncio.create_task(self._run_heartbeat(), name="wskit-redis-heartbeat"),
            ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.publish_timeout_s):
                await self._ready.wait()

    async def close(self) -> None:
        """Remove this instance's presence, stop the link and release every connection (idempotent)."""
        if self._state is BrokerState.CLOSED:
            return
        was_ready = self._state is BrokerState.READY
        await self._stop_tasks()
        client = self._client
        if client is not None and was_ready:
            try:
                async with asyncio.timeout(self.publish_timeout_s):
                    async with client.pipeline(transaction=False) as pipe:
                        for topic, entries in self._present.items():
                            pipe.hdel(self._presence_key(topic), *entries)
                        for topic, ids in self._unremoved.items():
                            pipe.hdel(self._presence_key(topic), *ids)
                        pipe.delete(self._instance_key(self.instance_id))
                        await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("redis broker %s: presence not removed on close (%s)", self.instance_id, exc)
        await self._release()

    async def _crash(self) -> None:
        """Stop as a killed process would: no presence cleanup (tests of TTL expiry use it)."""
        if self._state is not BrokerState.CLOSED:
            await self._stop_tasks()
            await self._release()

    async def _stop_tasks(self) -> None:
        self._set_state(BrokerState.CLOSED, "closed")
        self._state = BrokerState.CLOSED
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _release(self) -> None:
        self._listener = None
        self._present.clear()
        self._unremoved.clear()
        self._unremoved_count = 0
        self._topics.clear()
        self._tracked.clear()
        await self._drop_link(ConnectionError("broker closed"))
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # -- the subscriber link --------------------------------------------------------------

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
            self._set_state(BrokerState.DOWN, reason)
            failures += 1
            delay = random.uniform(0, min(self.backoff_max_s, self.backoff_min_s * 2 ** (failures - 1)))
            log.debug("redis broker %s: reconnect attempt %d in %.3fs", self.instance_id, failures, delay)
            await asyncio.sleep(delay)

    async def _open_link(self) -> None:
        assert self._client is not None
        pool = self._client.connection_pool
        kwargs = {**pool.connection_kwargs, "socket_timeout": None, "client_name": f"wskit:{self.instance_id}:sub"}
        conn: AbstractConnection = pool.connection_class(**kwargs)
        self._link_pending = conn  # so that _drop_link can close a half-open link
        async with asyncio.timeout(self.publish_timeout_s):
            await conn.connect()  # type: ignore[no-untyped-call]
        channels = [self._ctl, *map(self._channel, self._topics)]
        await conn.send_command("SUBSCRIBE", *channels, check_health=False)
        self._link = conn
        self._last_seen = time.monotonic()
        # topics added while the SUBSCRIBE above was being sent were not in it
        late = [self._channel(t) for t in self._topics if self._channel(t) not in channels]
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
                if channel != self._ctl and channel[len(self._prefix) :] not in self._topics:
                    # the last local member left while the SUBSCRIBE was in flight
                    await conn.send_command("UNSUBSCRIBE", channel, check_health=False)

    async def _link_ready(self) -> None:
        """Every channel is subscribed again: recover what was missed, restore presence, go ``READY``."""
        recovered = self._state is BrokerState.DOWN
        for topic in list(self._tracked):
            await self._catch_up(topic)
        if recovered:
            self.reconnects += 1
        self._set_state(BrokerState.READY, "reconnected" if recovered else "connected")
        await self._refresh(full=True)

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

    async def _on_message(self, channel: str, data: bytes) -> None:
        listener = self._listener
        if listener is None:
            return
        if channel == self._ctl:
            self._on_control(listener, data)
            return
        topic = channel[len(self._prefix) :]
        if topic not in self._topics:
            return  # unsubscribed while this was in flight: no local member wants it
        try:
            pub = Publication.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("redis broker %s: bad publication on %s dropped (%s)", self.instance_id, channel, exc)
            return
        if pub.offset is None or pub.epoch is None or self._topics[topic] is None:
            listener.deliver(pub)
            return
        # the first one since subscribe() (which has not read the position yet) starts it
        seen = step(self._tracked.get(topic), pub.offset, pub.epoch)
        if seen is Step.DUPLICATE:
            return  # already delivered by a catch-up
        if seen is Step.GAP or seen is Step.NEW_EPOCH:
            # the link was down, or the history was reset: deliver the missed ones first
            await self._catch_up(topic)
            last, epoch = self._tracked.get(topic, Position(0, ""))
            if pub.epoch != epoch:
                # published in an epoch the catch-up has left (e.g. just before the history
                # was moved to a new epoch after a restore from an older snapshot): delivering
                # it would take this topic, and every member's position, back to that epoch
                log.warning(
                    "redis broker %s: publication %s of %s dropped: its epoch %s is not the current %s",
                    self.instance_id,
                    pub.offset,
                    topic,
                    pub.epoch,
                    epoch or "(none)",
                )
                return
            if pub.offset <= last:
                return
        self._tracked[topic] = Position(pub.offset, pub.epoch)
        listener.deliver(pub)

    def _on_control(self, listener: BrokerListener, data: bytes) -> None:
        try:
            ctl = json.loads(data)
            if ctl["k"] == "u":
                listener.deliver_to_user(ctl["u"], ctl["d"].encode("utf-8", "surrogateescape"))
            elif ctl["k"] == "d":
                listener.disconnect_user(ctl["u"], int(ctl["c"]), ctl["r"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("redis broker %s: bad control message %r (%s)", self.instance_id, data[:200], exc)

    async def _catch_up(self, topic: str) -> None:
        """Hand the listener every kept publication of ``topic`` after the last one it got."""
        history = self._topics.get(topic)
        tracked = self._tracked.get(topic)
        listener = self._listener
        if history is None or tracked is None or listener is None:
            return
        epoch, last, pubs = await self._read(topic, tracked.offset, tracked.epoch, history, internal=True)
        if not epoch:
            return  # the history is gone; the next publication starts a new epoch
        if epoch == tracked.epoch and last < tracked.offset:
            epoch = await self._reepoch(topic, tracked, last)
            self._tracked[topic] = Position(last, epoch)
            return
        start = tracked.offset if epoch == tracked.epoch else 0
        first = (pubs[0].offset or 0) if pubs else last + 1
        if last > start and step(Position(start, tracked.epoch), first, epoch) is Step.GAP:
            # the stream no longer holds everything after what was handed over (trimmed by
            # max_len or ttl_s while the link was down): say so rather than skip offsets
            log.warning(
                "redis broker %s: offsets %d-%d of %s are no longer in its history: members told to recover",
                self.instance_id,
                start + 1,
                first - 1,
                topic,
            )
            listener.lost(topic)
        for pub in pubs:
            if pub.offset is not None and pub.offset > start:
                start = pub.offset
                listener.deliver(pub)
        self._tracked[topic] = Position(max(start, last), epoch)

    async def _reepoch(self, topic: str, tracked: Position, last: int) -> str:
        script = self._scripts["reepoch"]
        args = [tracked.epoch, tracked.offset, _new_epoch(), _META_TTL_MS]
        keys = self._history_keys(topic)
        raw = await self._call("history reset", lambda r: script(keys=keys, args=args, client=r), internal=True)
        epoch = raw.decode() if isinstance(raw, bytes) else str(raw)
        log.warning(
            "redis broker %s: history of %s went back to an older state (offset %d behind %d): new epoch %s",
            self.instance_id,
            topic,
            last,
            tracked.offset,
            epoch,
        )
        return epoch

    # -- heartbeat ----------------------------------------------------------------------------

    async def _run_heartbeat(self) -> None:
        """Refresh this instance's presence TTLs, and ping the link to notice a silent death."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if self._state is not BrokerState.READY:
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
            await self._refresh(full=False)

    async def _refresh(self, *, full: bool) -> None:
        """Keep this instance alive in presence; with ``full``, write its entries again (Redis may have lost them).

        Either way, delete the entries whose removal Redis did not confirm (see ``_unremoved``).
        """
        client = self._client
        if client is None:
            return
        ttl_ms = int(self.presence_ttl_s * 1000)
        # what is sent now; removals recorded while the pipeline runs wait for the next refresh
        unremoved = {topic: set(ids) for topic, ids in self._unremoved.items()}
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.set(self._instance_key(self.instance_id), b"1", px=ttl_ms)
                    for topic, entries in self._present.items():
                        key = self._presence_key(topic)
                        if full and entries:
                            pipe.hset(key, mapping=entries)  # type: ignore[arg-type]
                        pipe.pexpire(key, ttl_ms)
                    for topic, ids in unremoved.items():
                        pipe.hdel(self._presence_key(topic), *ids)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis broker %s: presence heartbeat failed (%s)", self.instance_id, exc)
            return
        back: dict[str, dict[str, str]] = {}
        for topic, ids in unremoved.items():
            for client_id in ids:
                self._confirm_removed(topic, client_id)
                value = self._present.get(topic, {}).get(client_id)
                if value is not None:  # joined again while the delete was in flight: write it back
                    back.setdefault(topic, {})[client_id] = value
        if back:
            try:
                async with asyncio.timeout(self.publish_timeout_s):
                    async with client.pipeline(transaction=False) as pipe:
                        for topic, entries in back.items():
                            pipe.hset(self._presence_key(topic), mapping=entries)  # type: ignore[arg-type]
                        await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("redis broker %s: presence of rejoined members not rewritten (%s)", self.instance_id, exc)

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
        if self._state is not BrokerState.READY:
            if history is None and self._listener is not None:
                self._listener.deliver(publication)
                raise self._unavailable("publish", local=True)
            raise self._unavailable("publish")
        d = publication.to_dict()
        del d["o"], d["e"]
        body = json.dumps(d, separators=(",", ":"))
        topic = publication.topic
        if history is None:
            await self._call("publish", lambda r: r.publish(self._channel(topic), body))
            return
        script = self._scripts["publish"]
        args = [history.max_len, int(history.ttl_s * 1000), _META_TTL_MS, _new_epoch(), self._channel(topic), body[:-1]]
        await self._call("publish", lambda r: script(keys=self._history_keys(topic), args=args, client=r))

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
        self._topics[topic] = history
        link = self._link
        channel = self._channel(topic)
        if link is None:
            return  # the next link subscribes every recorded topic
        if self._state is not BrokerState.READY:
            # a link that is still catching up: subscribe now, the confirmation is not awaited
            with contextlib.suppress(RedisError, OSError):
                await link.send_command("SUBSCRIBE", channel, check_health=False)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, deque()).append(waiter)
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                await link.send_command("SUBSCRIBE", channel, check_health=False)
                await waiter
            if history is not None and topic not in self._tracked:
                last, epoch = await self.position(topic, history)
                self._tracked.setdefault(topic, Position(last, epoch))
        except (RedisError, OSError, TimeoutError, ConnectionError) as exc:
            self._topics.pop(topic, None)
            self._tracked.pop(topic, None)
            raise self._unavailable("subscribe", exc) from exc

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (the UNSUBSCRIBE is not awaited: late messages are dropped)."""
        self._topics.pop(topic, None)
        self._tracked.pop(topic, None)
        link = self._link
        if link is not None:
            try:
                await link.send_command("UNSUBSCRIBE", self._channel(topic), check_health=False)
            except (RedisError, OSError) as exc:
                log.debug("redis broker %s: unsubscribe %s not sent (%s)", self.instance_id, topic, exc)

    # -- history ------------------------------------------------------------------------------

    async def _read(
        self, topic: str, offset: int, epoch: str, history: HistoryPolicy, *, internal: bool = False
    ) -> tuple[str, int, list[Publication]]:
        """The current epoch, last offset and kept publications after ``offset`` (all when the epoch differs)."""
        script = self._scripts["read"]
        args = [offset, epoch, history.max_len, int(history.ttl_s * 1000)]
        keys = self._history_keys(topic)
        raw = await self._call("history read", lambda r: script(keys=keys, args=args, client=r), internal=internal)
        current = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
        pubs: list[Publication] = []
        for _id, fields in reversed(raw[2]):
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            pub = Publication.from_dict(json.loads(values[b"p"] + b"}"))
            pubs.append(pub.with_position(int(values[b"o"]), current))
        return current, int(raw[1]), pubs

    async def recover(self, topic: str, offset: int, epoch: str, history: HistoryPolicy) -> list[Publication]:
        """The publications after ``offset`` in ``epoch``, in order; :class:`RecoveryError` when not all are kept."""
        if offset < 0:
            raise RecoveryError(topic, "Offset is not in this history")
        current, last, pubs = await self._read(topic, offset, epoch, history)
        if not current:
            raise RecoveryError(topic, "No history for this topic (never published or expired)")
        if current != epoch:
            raise RecoveryError(topic, "History epoch changed; reload the state")
        if offset > last:
            raise RecoveryError(topic, "Offset is not in this history")
        if offset == last:
            return []
        if not pubs or pubs[0].offset != offset + 1:
            raise RecoveryError(topic)
        return pubs

    async def position(self, topic: str, history: HistoryPolicy) -> tuple[int, str]:
        """The last offset of ``topic`` and its epoch (created, with offset 0, when missing)."""
        script = self._scripts["position"]
        args = [_new_epoch(), _META_TTL_MS]
        raw = await self._call("position", lambda r: script(keys=self._history_keys(topic), args=args, client=r))
        epoch = raw[1].decode() if isinstance(raw[1], bytes) else str(raw[1])
        return int(raw[0]), epoch

    # -- presence -----------------------------------------------------------------------------

    async def presence_add(self, topic: str, member: Member) -> None:
        """Record ``member`` (as this instance's); kept locally too, and written again after a Redis loss."""
        body = json.dumps({"u": member.user_id, "d": dict(member.data)}, separators=(",", ":"))
        value = f"{self.instance_id}\n{body}"  # the instance first: liveness is checked without decoding
        self._present.setdefault(topic, {})[member.client_id] = value
        self._confirm_removed(topic, member.client_id)  # back before a pending delete: spare it
        key, ttl_ms = self._presence_key(topic), int(self.presence_ttl_s * 1000)

        async def add(r: aioredis.Redis) -> None:
            async with r.pipeline(transaction=False) as pipe:
                pipe.hset(key, member.client_id, value)
                pipe.pexpire(key, ttl_ms)
                await pipe.execute()

        await self._call("presence", add)

    async def presence_remove(self, topic: str, client_id: str) -> None:
        """Forget ``client_id`` in ``topic``; raises ``UNAVAILABLE`` when Redis did not confirm it.

        An unconfirmed removal is not lost: the next presence refresh (the heartbeat, or the
        reconnection) deletes the entry, so a client that left during an outage is not listed.
        """
        entries = self._present.get(topic)
        if entries is not None:
            entries.pop(client_id, None)
            if not entries:
                del self._present[topic]
        try:
            await self._call("presence", lambda r: r.hdel(self._presence_key(topic), client_id))
        except WsKitError:
            self._remove_later(topic, client_id)
            raise

    def _remove_later(self, topic: str, client_id: str) -> None:
        ids = self._unremoved.setdefault(topic, set())
        if client_id in ids:
            return
        if self._unremoved_count >= _MAX_UNREMOVED:
            log.warning(
                "redis broker %s: %d presence removals pending, %s in %s stays listed until this instance stops",
                self.instance_id,
                self._unremoved_count,
                client_id,
                topic,
            )
            if not ids:
                del self._unremoved[topic]
            return
        ids.add(client_id)
        self._unremoved_count += 1

    def _confirm_removed(self, topic: str, client_id: str) -> None:
        ids = self._unremoved.get(topic)
        if ids is not None and client_id in ids:
            ids.discard(client_id)
            self._unremoved_count -= 1
            if not ids:
                del self._unremoved[topic]

    async def presence(self, topic: str) -> list[Member]:
        """Members of ``topic`` whose instance is alive; entries of dead instances are removed on the way."""
        key = self._presence_key(topic)

        async def read(r: aioredis.Redis) -> list[Member]:
            raw: dict[bytes | str, bytes | str] = await r.hgetall(key)
            entries: list[tuple[str, str, dict[str, Any]]] = []
            for client_id, value in raw.items():
                text = value.decode() if isinstance(value, bytes) else value
                instance, _, body = text.partition("\n")
                name = client_id.decode() if isinstance(client_id, bytes) else client_id
                entries.append((name, instance, json.loads(body)))
            instances = sorted({instance for _, instance, _ in entries})
            alive: dict[str, bool] = {}
            if instances:
                async with r.pipeline(transaction=False) as pipe:
                    for instance in instances:
                        pipe.exists(self._instance_key(instance))
                    alive = dict(zip(instances, map(bool, await pipe.execute()), strict=True))
            dead = [client_id for client_id, instance, _ in entries if not alive.get(instance)]
            if dead:
                await r.hdel(key, *dead)
            return [
                Member(client_id, body.get("u"), body.get("d") or {}, instance)
                for client_id, instance, body in entries
                if alive.get(instance)
            ]

        return await self._call("presence", read)

    # -- users --------------------------------------------------------------------------------

    async def _control(self, what: str, message: dict[str, Any], local: Callable[[BrokerListener], None]) -> None:
        if self._state is not BrokerState.READY:
            if self._listener is not None:
                local(self._listener)  # this instance's connections still get it
                raise self._unavailable(what, local=True)
            raise self._unavailable(what)
        body = json.dumps(message, separators=(",", ":"))
        await self._call(what, lambda r: r.publish(self._ctl, body))

    async def send_to_user(self, user_id: str, data: bytes) -> None:
        """Deliver ``data`` to ``user_id`` on every instance (only locally, then ``UNAVAILABLE``, when down)."""
        message = {"k": "u", "u": user_id, "d": data.decode("utf-8", "surrogateescape")}
        await self._control("send_to_user", message, lambda listener: listener.deliver_to_user(user_id, data))

    async def disconnect_user(self, user_id: str, code: int, reason: str) -> None:
        """Close ``user_id``'s connections on every instance (only locally, then ``UNAVAILABLE``, when down)."""
        message = {"k": "d", "u": user_id, "c": code, "r": reason}
        await self._control(
            "disconnect_user", message, lambda listener: listener.disconnect_user(user_id, code, reason)
        )

    async def ban(self, user_id: str, ttl_s: float | None = None) -> None:
        """Ban ``user_id`` on every instance (for ``ttl_s`` seconds, or until :meth:`unban`)."""
        key = f"{self.namespace}:ban:{user_id}"
        if ttl_s is not None and ttl_s <= 0:
            await self.unban(user_id)
            return
        px = max(1, int(ttl_s * 1000)) if ttl_s is not None else None
        await self._call("ban", lambda r: r.set(key, b"1", px=px))

    async def unban(self, user_id: str) -> None:
        await self._call("unban", lambda r: r.delete(f"{self.namespace}:ban:{user_id}"))

    async def is_banned(self, user_id: str) -> bool:
        """Whether ``user_id`` is banned (raises ``UNAVAILABLE`` when Redis cannot tell; callers decide)."""
        return bool(await self._call("is_banned", lambda r: r.exists(f"{self.namespace}:ban:{user_id}")))

    def __repr__(self) -> str:
        return f"RedisBroker({self.url!r}, namespace={self.namespace!r}, state={self._state})"
