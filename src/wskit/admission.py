"""Who may open a connection: the checks at upgrade, before any WebSocket exists.

In order: the ``Origin`` allow-list (403: cross-site WebSocket hijacking), the global and
per-IP connection caps (503 / 429; the client IP comes from ``X-Forwarded-For`` only when
the peer is a trusted proxy), ``authenticate(request)`` (401), and the shared ban list
(403). Each refusal is an HTTP answer and at most one log line (rate-limited: a client can
be refused as often as it likes); the counts are released when the connection ends.
Transport-neutral: the aiohttp server and the ASGI app share it.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wskit.config import Network
from wskit.errors import ErrorCode, WsKitError
from wskit.logs import LogBudget
from wskit.pubsub.broker import Broker
from wskit.telemetry import Telemetry
from wskit.transports.base import HandshakeRequest

__all__ = ["Admission", "Authenticate", "Refusal", "client_ip"]

log = logging.getLogger("wskit.admission")

#: The HTTP answer to an ``authenticate`` that raised :class:`WsKitError` with this code
#: (any other code: 401).
_REFUSAL_STATUS: dict[object, tuple[int, str]] = {
    ErrorCode.UNAUTHENTICATED: (401, "Unauthorized"),
    ErrorCode.PERMISSION_DENIED: (403, "Forbidden"),
    ErrorCode.RESOURCE_EXHAUSTED: (429, "Too Many Requests"),
    ErrorCode.UNAVAILABLE: (503, "Service Unavailable"),
}

#: ``authenticate(request)`` -> connection data, or None to refuse (sync or async); raising
#: :class:`~wskit.errors.WsKitError` refuses too, with a reason for the log (the HTTP status
#: follows the code: UNAUTHENTICATED 401, PERMISSION_DENIED 403, RESOURCE_EXHAUSTED 429,
#: UNAVAILABLE 503).
Authenticate = Callable[[HandshakeRequest], "Mapping[str, Any] | Awaitable[Mapping[str, Any] | None] | None"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """An upgrade refused: the HTTP status and body to answer with."""

    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an address; an IPv4-mapped IPv6 one (``::ffff:10.0.0.5``) as its IPv4 self.

    A dual-stack listener (``HOST=::``) sees IPv4 peers in the mapped form, which no IPv4
    network contains: unmapped, ``TRUSTED_PROXIES=10.0.0.0/8`` and the per-IP counts work the
    same on either kind of socket.
    """
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, networks: Sequence[Network]) -> bool:
    if address is None or not networks:
        return False
    return any(address in net for net in networks)


def _forwarded_for(headers: Mapping[str, str]) -> list[str]:
    """Every hop of every ``X-Forwarded-For`` line, in order.

    A proxy may append its own header line instead of extending the client's (HAProxy's
    ``option forwardfor``), so the first line can be entirely the client's invention: the
    lines are joined, as RFC 9110 section 5.3 says repeated fields combine, before walking.
    """
    getall = getattr(headers, "getall", None)  # multidicts (aiohttp's) keep each line
    if getall is not None:
        lines = [str(line) for line in getall("X-Forwarded-For", ())]
    else:
        line = headers.get("X-Forwarded-For")
        lines = [] if line is None else [line]
    return [hop.strip() for hop in ",".join(lines).split(",") if hop.strip()]


def client_ip(peer: str | None, headers: Mapping[str, str], trusted: Sequence[Network]) -> str | None:
    """The client's IP: the peer's, or from ``X-Forwarded-For`` when the peer is trusted.

    Walks the hops (of all header lines together) from the right, skipping trusted proxies,
    so a client cannot spoof its address by sending its own ``X-Forwarded-For`` through the
    proxy. IPv4-mapped IPv6 addresses are reported, and matched, as IPv4. A hop that is not
    an address stops the walk at the last trusted proxy's word: the peer is reported.
    """
    peer_address = _address(peer)
    shown_peer = str(peer_address) if peer_address is not None else peer
    if not _in(peer_address, trusted):
        return shown_peer
    for hop in reversed(_forwarded_for(headers)):
        address = _address(hop)
        if address is None:
            return shown_peer
        if not _in(address, trusted):
            return str(address)
    return shown_peer


class Admission:
    """The upgrade checks of one server, and its live connection counts."""

    def __init__(
        self,
        *,
        authenticate: Authenticate | None = None,
        allowed_origins: Sequence[str] | None = None,
        max_connections: int = 0,
        max_connections_per_ip: int = 0,
        trusted_proxies: Sequence[Network] = (),
        broker: Callable[[], Broker] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.authenticate = authenticate
        #: counts refusals by reason and writes their events
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.allowed_origins = None if allowed_origins is None else frozenset(allowed_origins)
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.trusted_proxies = tuple(trusted_proxies)
        self._broker = broker
        self.total = 0
        self.per_ip: dict[str, int] = {}
        self.refused: dict[int, int] = {}
        #: while draining (graceful shutdown) every upgrade gets 503
        self.closed = False
        self._crash_budget = LogBudget()
        self._ban_budget = LogBudget()

    def resolve_ip(self, peer: str | None, headers: Mapping[str, str]) -> str | None:
        return client_ip(peer, headers, self.trusted_proxies)

    def _refuse(self, status: int, text: str, request: HandshakeRequest, why: str, reason: str) -> Refusal:
        # one line per refused upgrade at most, and not more than the budget allows: a client
        # can be refused as often as it likes (the event's budget)
        self.refused[status] = self.refused.get(status, 0) + 1
        self.telemetry.refused_upgrade(reason, status, request.client_ip, request.path, f"{text}: {why}")
        return Refusal(status, text)

    async def admit(self, request: HandshakeRequest) -> Mapping[str, Any] | Refusal:
        """The connection's data, or the refusal. On success the caller must :meth:`release`."""
        if self.closed:
            return self._refuse(503, "Service Unavailable", request, "server shutting down", "draining")
        if self.allowed_origins is not None and "*" not in self.allowed_origins:
            origin = request.headers.get("Origin")
            if origin is None or origin.rstrip("/").lower() not in self.allowed_origins:
                return self._refuse(403, "Forbidden", request, f"origin {origin!r} not allowed", "origin")
        if self.max_connections and self.total >= self.max_connections:
            return self._refuse(
                503, "Service Unavailable", request, f"{self.total} connections (MAX_CONNECTIONS)", "max_connections"
            )
        ip = request.client_ip or "?"
        if self.max_connections_per_ip and self.per_ip.get(ip, 0) >= self.max_connections_per_ip:
            return self._refuse(429, "Too Many Requests", request, "MAX_CONNECTIONS_PER_IP reached", "per_ip")
        # count before awaiting authenticate: concurrent upgrades cannot overshoot the caps
        self._count(ip, +1)
        try:
            data = await self._authenticate(request)
            if isinstance(data, Refusal):
                self._count(ip, -1)
                return data
            user = data.get("user_id")
            if user is not None and await self._banned(str(user)):
                self._count(ip, -1)
                return self._refuse(403, "Forbidden", request, f"user {user} is banned", "banned")
            if self.closed:  # a shutdown began while authenticate ran: its notices went out already
                self._count(ip, -1)
                return self._refuse(503, "Service Unavailable", request, "server shutting down", "draining")
        except BaseException:
            self._count(ip, -1)
            raise
        return data

    def release(self, ip: str | None) -> None:
        """A connection admitted for ``ip`` has ended."""
        self._count(ip or "?", -1)

    def _count(self, ip: str, delta: int) -> None:
        self.total += delta
        left = self.per_ip.get(ip, 0) + delta
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)

    async def _authenticate(self, request: HandshakeRequest) -> Mapping[str, Any] | Refusal:
        if self.authenticate is None:
            return {}
        try:
            result: object = self.authenticate(request)
            if inspect.isawaitable(result):
                result = await result
        except WsKitError as exc:  # a refusal that says why (jwt_authenticate: "Token expired")
            status, text = _REFUSAL_STATUS.get(exc.code, (401, "Unauthorized"))
            reason = exc.details.get("reason")
            why = exc.message + (f" ({reason})" if reason else "")
            return self._refuse(status, text, request, why, "auth")
        except Exception:  # a crashing hook is a 500 for this client, not a dead server
            # a budget of its own: a flood of cheap refusals must not hide the application's bug
            self.refused[500] = self.refused.get(500, 0) + 1
            tail = self._crash_budget.take()
            if tail is not None:
                log.exception("authenticate() raised for %s %s%s", request.client_ip, request.path, tail)
            return Refusal(500, "Internal Server Error")
        if result is None or result is False:
            # False reads as "not authenticated" too; anything else that is not a mapping is a bug
            return self._refuse(401, "Unauthorized", request, f"authenticate() returned {result}", "auth")
        if not isinstance(result, Mapping):
            log.error("authenticate() must return a mapping or None, got %r", type(result).__name__)
            return Refusal(500, "Internal Server Error")
        return result

    async def _banned(self, user_id: str) -> bool:
        if self._broker is None:
            return False
        is_banned = getattr(self._broker(), "is_banned", None)
        if is_banned is None:
            return False  # a broker without user control keeps no bans
        try:
            return bool(await is_banned(user_id))
        except Exception as exc:  # noqa: BLE001 - fail open: a Redis outage must not lock everyone out
            tail = self._ban_budget.take()  # one per upgrade for as long as the outage lasts
            if tail is not None:
                log.warning("ban check for user %s failed (%s); letting the connection in%s", user_id, exc, tail)
            return False
