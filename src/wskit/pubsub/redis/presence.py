"""The Redis broker's presence: who is subscribed to a topic, on every live instance.

A topic's members are one hash, ``{ns}:p:{topic}``: client id -> ``instance\\n{json}``. An
instance is alive while its key ``{ns}:i:{instance}`` exists; the heartbeat keeps that key
and this instance's hashes alive (``presence_ttl_s``), so the entries of an instance that
died vanish with it, and readers skip (and delete) entries whose instance is gone.

This instance keeps its own entries in memory too, to write them again when Redis lost them
(a restart), and remembers removals Redis did not confirm, to delete them on the next refresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from wskit.errors import WsKitError
from wskit.pubsub.broker import Member
from wskit.pubsub.redis.link import Link

__all__ = ["Presence"]

log = logging.getLogger("wskit.pubsub.redis")

#: Presence removals that Redis did not confirm are retried on every refresh; past this many
#: pending ones (a long outage with heavy churn) further ones are only logged, and their
#: entries stay until this instance stops (its entries then expire with it).
_MAX_UNREMOVED = 100_000


class Presence:
    """This instance's presence entries, their refresh, and the reading of a topic's members."""

    def __init__(self, link: Link, namespace: str, *, ttl_s: float) -> None:
        self._link = link
        self._namespace = namespace
        self._ttl_s = ttl_s
        #: this instance's presence entries (re-registered after Redis lost them)
        self._present: dict[str, dict[str, str]] = {}
        #: per topic, client ids removed locally whose HDEL Redis did not confirm: a refresh
        #: deletes them, or a member who left during an outage would stay listed for as long
        #: as this instance lives (its heartbeat keeps the topic's hash alive)
        self._unremoved: dict[str, set[str]] = {}
        self._unremoved_count = 0

    def _key(self, topic: str) -> str:
        return f"{self._namespace}:p:{topic}"

    def _instance_key(self, instance: str) -> str:
        return f"{self._namespace}:i:{instance}"

    async def add(self, topic: str, member: Member) -> None:
        """Record ``member`` (as this instance's); kept locally too, and written again after a Redis loss."""
        body = json.dumps({"u": member.user_id, "d": dict(member.data)}, separators=(",", ":"))
        value = f"{self._link.instance_id}\n{body}"  # the instance first: liveness is checked without decoding
        self._present.setdefault(topic, {})[member.client_id] = value
        self._confirm_removed(topic, member.client_id)  # back before a pending delete: spare it
        key, ttl_ms = self._key(topic), int(self._ttl_s * 1000)

        async def add(r: aioredis.Redis) -> None:
            async with r.pipeline(transaction=False) as pipe:
                pipe.hset(key, member.client_id, value)
                pipe.pexpire(key, ttl_ms)
                await pipe.execute()

        await self._link.call("presence", add)

    async def remove(self, topic: str, client_id: str) -> None:
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
            await self._link.call("presence", lambda r: r.hdel(self._key(topic), client_id))
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
                self._link.instance_id,
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

    async def members(self, topic: str) -> list[Member]:
        """Members of ``topic`` whose instance is alive; entries of dead instances are removed on the way."""
        key = self._key(topic)

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

        return await self._link.call("presence", read)

    async def refresh(self, full: bool) -> None:
        """Keep this instance alive in presence; with ``full``, write its entries again (Redis may have lost them).

        Either way, delete the entries whose removal Redis did not confirm (see ``_unremoved``).
        """
        client = self._link.client
        if client is None:
            return
        timeout_s = self._link.publish_timeout_s
        ttl_ms = int(self._ttl_s * 1000)
        # what is sent now; removals recorded while the pipeline runs wait for the next refresh
        unremoved = {topic: set(ids) for topic, ids in self._unremoved.items()}
        try:
            async with asyncio.timeout(timeout_s):
                async with client.pipeline(transaction=False) as pipe:
                    pipe.set(self._instance_key(self._link.instance_id), b"1", px=ttl_ms)
                    for topic, entries in self._present.items():
                        key = self._key(topic)
                        if full and entries:
                            pipe.hset(key, mapping=entries)  # type: ignore[arg-type]
                        pipe.pexpire(key, ttl_ms)
                    for topic, ids in unremoved.items():
                        pipe.hdel(self._key(topic), *ids)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis broker %s: presence heartbeat failed (%s)", self._link.instance_id, exc)
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
                async with asyncio.timeout(timeout_s):
                    async with client.pipeline(transaction=False) as pipe:
                        for topic, entries in back.items():
                            pipe.hset(self._key(topic), mapping=entries)  # type: ignore[arg-type]
                        await pipe.execute()
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning(
                    "redis broker %s: presence of rejoined members not rewritten (%s)", self._link.instance_id, exc
                )

    async def withdraw(self) -> None:
        """Remove this instance's entries and liveness key (a clean stop)."""
        client = self._link.client
        if client is None:
            return
        try:
            async with asyncio.timeout(self._link.publish_timeout_s):
                async with client.pipeline(transaction=False) as pipe:
                    for topic, entries in self._present.items():
                        pipe.hdel(self._key(topic), *entries)
                    for topic, ids in self._unremoved.items():
                        pipe.hdel(self._key(topic), *ids)
                    pipe.delete(self._instance_key(self._link.instance_id))
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis broker %s: presence not removed on close (%s)", self._link.instance_id, exc)

    def clear(self) -> None:
        """Forget every entry and pending removal (the broker stopped)."""
        self._present.clear()
        self._unremoved.clear()
        self._unremoved_count = 0
