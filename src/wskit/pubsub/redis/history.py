"""The Redis broker's history: offsets, epochs and streams, recovery, and the reader's catch-up.

A history topic has three keys: ``{ns}:seq:{topic}`` (the last offset), ``{ns}:e:{topic}``
(the epoch) and ``{ns}:h:{topic}`` (a Stream of the kept publications, each with its offset).

- **One atomic step per publish.** One Lua script assigns the next offset, creates the epoch
  when missing, appends to the stream trimmed by length and age, refreshes the TTLs and
  publishes the publication *with* its offset and epoch. So offsets follow publish order and
  no subscriber can see ``n + 1`` before ``n``.
- **No gap after an outage.** The reader remembers, per history topic, the last offset it
  handed to the hub. After the link comes back (and on any live message that skips offsets)
  it reads what it missed from the stream before going on, in the reader task itself, so the
  hub receives each topic in order and without duplicates. What the stream no longer holds is
  reported (``BrokerListener.lost``), never skipped silently.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from wskit.protocol import Position, Step, step
from wskit.pubsub.broker import BrokerListener, HistoryPolicy, Publication, RecoveryError
from wskit.pubsub.redis.link import Link

__all__ = ["META_TTL_MS", "History", "new_epoch"]

log = logging.getLogger("wskit.pubsub.redis")

#: Offsets and epochs outlive the stream entries (a day at least), so that a client that
#: missed nothing on an idle topic can resume without reloading its state.
META_TTL_MS = 86_400_000

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


def new_epoch() -> str:
    """A fresh epoch name."""
    return uuid.uuid4().hex[:12]


class History:
    """Offsets, epochs and streams of history topics, and what the reader has handed over.

    ``reepoch`` is called by the catch-up to move a topic to a new epoch (normally this
    object's own :meth:`reepoch`; the broker passes its own method, which delegates here).
    """

    def __init__(self, link: Link, namespace: str, *, reepoch: Callable[[str, Position, int], Awaitable[str]]) -> None:
        self._link = link
        self._namespace = namespace
        self._reepoch = reepoch
        self._scripts: dict[str, Any] = {}
        #: per history topic: the position of the last publication handed to the listener
        self.tracked: dict[str, Position] = {}

    def keys(self, topic: str) -> list[str]:
        """``topic``'s last offset, epoch and stream keys (the scripts' ``KEYS``)."""
        ns = self._namespace
        return [f"{ns}:seq:{topic}", f"{ns}:e:{topic}", f"{ns}:h:{topic}"]

    def load_scripts(self, client: aioredis.Redis) -> None:
        """Register the Lua scripts with ``client`` (no round trip: they are sent on first use)."""
        scripts = (
            ("publish", _PUBLISH_LUA),
            ("position", _POSITION_LUA),
            ("read", _READ_LUA),
            ("reepoch", _REEPOCH_LUA),
        )
        for name, lua in scripts:
            self._scripts[name] = client.register_script(lua)

    def forget(self, topic: str) -> None:
        """No local member wants ``topic`` any more: stop tracking it."""
        self.tracked.pop(topic, None)

    def clear(self) -> None:
        self.tracked.clear()

    # -- commands -------------------------------------------------------------------------------

    async def publish(self, topic: str, body: str, history: HistoryPolicy) -> None:
        """Append ``body`` (a publication's JSON) to ``topic``'s stream and publish it with its position."""
        script = self._scripts["publish"]
        args = [
            history.max_len,
            int(history.ttl_s * 1000),
            META_TTL_MS,
            new_epoch(),
            self._link.channel(topic),
            body[:-1],
        ]
        await self._link.call("publish", lambda r: script(keys=self.keys(topic), args=args, client=r))

    async def read(
        self, topic: str, offset: int, epoch: str, history: HistoryPolicy, *, internal: bool = False
    ) -> tuple[str, int, list[Publication]]:
        """The current epoch, last offset and kept publications after ``offset`` (all when the epoch differs)."""
        script = self._scripts["read"]
        args = [offset, epoch, history.max_len, int(history.ttl_s * 1000)]
        keys = self.keys(topic)
        raw = await self._link.call("history read", lambda r: script(keys=keys, args=args, client=r), internal=internal)
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
        current, last, pubs = await self.read(topic, offset, epoch, history)
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
        args = [new_epoch(), META_TTL_MS]
        raw = await self._link.call("position", lambda r: script(keys=self.keys(topic), args=args, client=r))
        epoch = raw[1].decode() if isinstance(raw[1], bytes) else str(raw[1])
        return int(raw[0]), epoch

    async def reepoch(self, topic: str, tracked: Position, last: int) -> str:
        """Move ``topic`` to a new epoch: Redis went back to an older state (its offset ``last``
        is behind the ``tracked`` one already delivered). Returns the epoch now current."""
        script = self._scripts["reepoch"]
        args = [tracked.epoch, tracked.offset, new_epoch(), META_TTL_MS]
        keys = self.keys(topic)
        raw = await self._link.call("history reset", lambda r: script(keys=keys, args=args, client=r), internal=True)
        epoch = raw.decode() if isinstance(raw, bytes) else str(raw)
        log.warning(
            "redis broker %s: history of %s went back to an older state (offset %d behind %d): new epoch %s",
            self._link.instance_id,
            topic,
            last,
            tracked.offset,
            epoch,
        )
        return epoch

    # -- the reader's side ------------------------------------------------------------------------

    async def track(self, topic: str, history: HistoryPolicy) -> None:
        """Start tracking a newly subscribed topic from its current position (unless tracked already)."""
        if topic not in self.tracked:
            last, epoch = await self.position(topic, history)
            self.tracked.setdefault(topic, Position(last, epoch))

    async def receive(self, topic: str, pub: Publication, listener: BrokerListener) -> None:
        """Hand ``listener`` a live publication of history topic ``topic`` (one that carries its
        offset and epoch): in order, once, after what it missed."""
        assert pub.offset is not None and pub.epoch is not None
        # the first one since subscribe() (which has not read the position yet) starts it
        seen = step(self.tracked.get(topic), pub.offset, pub.epoch)
        if seen is Step.DUPLICATE:
            return  # already delivered by a catch-up
        if seen is Step.GAP or seen is Step.NEW_EPOCH:
            # the link was down, or the history was reset: deliver the missed ones first
            await self.catch_up(topic)
            last, epoch = self.tracked.get(topic, Position(0, ""))
            if pub.epoch != epoch:
                # published in an epoch the catch-up has left (e.g. just before the history
                # was moved to a new epoch after a restore from an older snapshot): delivering
                # it would take this topic, and every member's position, back to that epoch
                log.warning(
                    "redis broker %s: publication %s of %s dropped: its epoch %s is not the current %s",
                    self._link.instance_id,
                    pub.offset,
                    topic,
                    pub.epoch,
                    epoch or "(none)",
                )
                return
            if pub.offset <= last:
                return
        self.tracked[topic] = Position(pub.offset, pub.epoch)
        listener.deliver(pub)

    async def catch_up_all(self) -> None:
        """:meth:`catch_up` every tracked topic (the link came back)."""
        for topic in list(self.tracked):
            await self.catch_up(topic)

    async def catch_up(self, topic: str) -> None:
        """Hand the listener every kept publication of ``topic`` after the last one it got."""
        history = self._link.topics.get(topic)
        tracked = self.tracked.get(topic)
        listener = self._link.listener
        if history is None or tracked is None or listener is None:
            return
        epoch, last, pubs = await self.read(topic, tracked.offset, tracked.epoch, history, internal=True)
        if not epoch:
            return  # the history is gone; the next publication starts a new epoch
        if epoch == tracked.epoch and last < tracked.offset:
            epoch = await self._reepoch(topic, tracked, last)
            self.tracked[topic] = Position(last, epoch)
            return
        start = tracked.offset if epoch == tracked.epoch else 0
        first = (pubs[0].offset or 0) if pubs else last + 1
        if last > start and step(Position(start, tracked.epoch), first, epoch) is Step.GAP:
            # the stream no longer holds everything after what was handed over (trimmed by
            # max_len or ttl_s while the link was down): say so rather than skip offsets
            log.warning(
                "redis broker %s: offsets %d-%d of %s are no longer in its history: members told to recover",
                self._link.instance_id,
                start + 1,
                first - 1,
                topic,
            )
            listener.lost(topic)
        for pub in pubs:
            if pub.offset is not None and pub.offset > start:
                start = pub.offset
                listener.deliver(pub)
        self.tracked[topic] = Position(max(start, last), epoch)
