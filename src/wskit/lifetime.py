"""How long a connection may live: idle timeout, auth timeout, token expiry, dead peers.

One timer per connection (not one per rule): it fires at the earliest deadline, checks all
of them, and re-arms itself. Reading a message only stores a timestamp, so the hot path
pays nothing for these guards. Each close says why, in its reason.

Transport pings are one sweep over all connections, not a timer per connection: every
``ping_interval`` seconds each open connection is pinged, and half an interval later those
from which no byte came back (no pong, nothing at all) are closed. A host that can ping
turns it on with :meth:`Watchdog.enable_pings`; it counts bytes where they arrive, so a
connection whose application is busy (not reading) is not taken for a dead one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wskit.connection import Connection
from wskit.errors import CloseCode

__all__ = ["Watchdog"]


class Watchdog:
    """Closes connections that idle too long, never authenticate, or outlive their token.

    ``idle_ms``: no application message for that long -> close 1001 "idle timeout".
    ``auth_ms``: no ``user_id`` in the connection's data that long after opening -> 1008.
    Token expiry: ``data["token_exp"]`` (seconds since the epoch) passed -> 1008, unless a
    re-authentication moved it.
    Dead peers (once :meth:`enable_pings` is called): no byte received within half a ping
    interval of a ping -> close 1011 "ping timeout".
    """

    def __init__(self, *, idle_ms: int = 0, auth_ms: int = 0, token_leeway_s: float = 30.0) -> None:
        self.idle_s = idle_ms / 1000.0
        self.auth_s = auth_ms / 1000.0
        #: the same clock-skew allowance the JWT verifier and require_auth grant
        self.token_leeway_s = token_leeway_s
        self._timers: dict[Connection, asyncio.TimerHandle] = {}
        self.closed: dict[str, int] = {"idle": 0, "auth": 0, "token": 0, "ping": 0}
        self.ping_interval_s = 0.0
        self._ping: Callable[[Connection], None] | None = None
        self._heard: Callable[[Connection], bool] = _always
        #: connections the ping sweep covers (insertion-ordered; values unused)
        self._live: dict[Connection, None] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    def enable_pings(
        self, interval_s: float, ping: Callable[[Connection], None], heard: Callable[[Connection], bool]
    ) -> None:
        """Every ``interval_s`` seconds call ``ping(conn)`` for each watched connection (send a
        ping and start listening afresh); ``interval_s / 2`` later close (1011) those for which
        ``heard(conn)`` says nothing arrived since. 0: off."""
        self.ping_interval_s = interval_s
        self._ping = ping if interval_s > 0 else None
        self._heard = heard

    def watch(self, conn: Connection) -> None:
        """Start watching ``conn`` (call when it opens)."""
        conn.last_activity = time.monotonic()
        conn.opened_at = conn.last_activity
        conn.watchdog = self
        self._arm(conn)
        if self._ping is not None:
            self._live[conn] = None
            loop = asyncio.get_running_loop()
            if self._sweep is None or self._sweep_loop is not loop:  # not running, or on an ended loop
                self._sweep_loop = loop
                self._sweep = loop.call_later(self.ping_interval_s, self._send_pings)

    def rearm(self, conn: Connection) -> None:
        """A deadline of ``conn`` changed (AUTH set a token expiry): look again."""
        if conn.closed:
            return
        timer = self._timers.pop(conn, None)
        if timer is not None:
            timer.cancel()
        self._arm(conn)

    def forget(self, conn: Connection) -> None:
        conn.watchdog = None
        self._live.pop(conn, None)
        timer = self._timers.pop(conn, None)
        if timer is not None:
            timer.cancel()

    def _send_pings(self) -> None:
        self._sweep = None
        ping = self._ping
        if ping is None or not self._live:
            return  # the sweep stops while nobody is connected; watch() restarts it
        for conn in list(self._live):
            if not conn.closed and conn.close_code is None:
                ping(conn)
        self._sweep = asyncio.get_running_loop().call_later(self.ping_interval_s / 2, self._check_pongs)

    def _check_pongs(self) -> None:
        half = self.ping_interval_s / 2
        heard = self._heard
        for conn in list(self._live):
            if not conn.closed and conn.close_code is None and not heard(conn):
                self.closed["ping"] += 1
                conn.close_soon(CloseCode.INTERNAL_ERROR, f"ping timeout: no pong within {half:g} s")
        self._sweep = asyncio.get_running_loop().call_later(half, self._send_pings)

    def _next_deadline(self, conn: Connection, now: float) -> float | None:
        deadlines: list[float] = []
        if self.idle_s:
            deadlines.append(conn.last_activity + self.idle_s)
        if self.auth_s and conn.user_id is None:
            deadlines.append(conn.opened_at + self.auth_s)
        exp = _token_exp(conn.data)
        if exp is not None:
            deadlines.append(now + max(0.0, exp + self.token_leeway_s - time.time()))
        return min(deadlines) if deadlines else None

    def _arm(self, conn: Connection) -> None:
        now = time.monotonic()
        deadline = self._next_deadline(conn, now)
        if deadline is None:
            return  # nothing to watch; an AUTH that sets a token expiry calls conn.rearm()
        loop = asyncio.get_running_loop()
        self._timers[conn] = loop.call_later(max(0.0, deadline - now) + 0.001, self._check, conn)

    def _check(self, conn: Connection) -> None:
        self._timers.pop(conn, None)
        if conn.closed or conn.close_code is not None:
            return
        now = time.monotonic()
        exp = _token_exp(conn.data)
        if exp is not None and time.time() >= exp + self.token_leeway_s:
            self.closed["token"] += 1
            conn.close_soon(CloseCode.POLICY_VIOLATION, "token expired: reconnect or send AUTH with a fresh token")
            return
        if self.auth_s and conn.user_id is None and now - conn.opened_at >= self.auth_s:
            self.closed["auth"] += 1
            conn.close_soon(CloseCode.POLICY_VIOLATION, f"authentication timeout ({int(self.auth_s * 1000)} ms)")
            return
        if self.idle_s and now - conn.last_activity >= self.idle_s:
            self.closed["idle"] += 1
            conn.close_soon(CloseCode.GOING_AWAY, f"idle timeout: no message for {int(self.idle_s * 1000)} ms")
            return
        self._arm(conn)


def _always(conn: Connection) -> bool:
    return True


def _token_exp(data: dict[str, Any]) -> float | None:
    exp = data.get("token_exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp)
    return None
