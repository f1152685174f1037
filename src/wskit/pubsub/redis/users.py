"""The Redis broker's user controls: send to a user, disconnect a user, and bans.

Sends and disconnects are messages on one control channel (``{ns}:ctl``) that every
instance's link subscribes; each instance acts on its own connections of that user. While
the link is down they still reach this instance's connections, and the caller is told
``UNAVAILABLE`` with details ``{"delivered": "local"}``. A ban is a key, ``{ns}:ban:{user}``,
that expires with the ban.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from wskit.pubsub.broker import BrokerListener, BrokerState
from wskit.pubsub.redis.link import Link

__all__ = ["Users"]

log = logging.getLogger("wskit.pubsub.redis")


class Users:
    """Per-user controls across every instance sharing the Redis."""

    def __init__(self, link: Link, namespace: str) -> None:
        self._link = link
        self._namespace = namespace

    def _ban_key(self, user_id: str) -> str:
        return f"{self._namespace}:ban:{user_id}"

    async def _control(self, what: str, message: dict[str, Any], local: Callable[[BrokerListener], None]) -> None:
        link = self._link
        if link.state is not BrokerState.READY:
            if link.listener is not None:
                local(link.listener)  # this instance's connections still get it
                raise link.unavailable(what, local=True)
            raise link.unavailable(what)
        body = json.dumps(message, separators=(",", ":"))
        await link.call(what, lambda r: r.publish(link.control, body))

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

    def on_control(self, listener: BrokerListener, data: bytes) -> None:
        """Act on a message of the control channel (sent by any instance, this one included)."""
        try:
            ctl = json.loads(data)
            if ctl["k"] == "u":
                listener.deliver_to_user(ctl["u"], ctl["d"].encode("utf-8", "surrogateescape"))
            elif ctl["k"] == "d":
                listener.disconnect_user(ctl["u"], int(ctl["c"]), ctl["r"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("redis broker %s: bad control message %r (%s)", self._link.instance_id, data[:200], exc)

    async def ban(self, user_id: str, ttl_s: float | None = None) -> None:
        """Ban ``user_id`` on every instance (for ``ttl_s`` seconds, or until :meth:`unban`)."""
        key = self._ban_key(user_id)
        if ttl_s is not None and ttl_s <= 0:
            await self.unban(user_id)
            return
        px = max(1, int(ttl_s * 1000)) if ttl_s is not None else None
        await self._link.call("ban", lambda r: r.set(key, b"1", px=px))

    async def unban(self, user_id: str) -> None:
        """Lift ``user_id``'s ban."""
        await self._link.call("unban", lambda r: r.delete(self._ban_key(user_id)))

    async def is_banned(self, user_id: str) -> bool:
        """Whether ``user_id`` is banned (raises ``UNAVAILABLE`` when Redis cannot tell; callers decide)."""
        return bool(await self._link.call("is_banned", lambda r: r.exists(self._ban_key(user_id))))
