"""The transport interface: what the core needs from one socket, and from an HTTP upgrade.

A transport (aiohttp, ASGI, in-memory) adapts its socket to :class:`Socket` (two methods),
describes the upgrade request as a :class:`HandshakeRequest`, and runs a read loop that hands
each frame to :meth:`wskit.dispatch.Dispatcher.receive`. Everything else (routing,
validation, queues, pub/sub) is the core's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["HandshakeRequest", "Socket", "chosen_subprotocol"]


class Socket(Protocol):
    """One accepted WebSocket, as the core sees it."""

    def send_frame(self, data: bytes) -> Awaitable[None] | None:
        """Write one text frame holding ``data`` (UTF-8 JSON).

        Returns None when the transport took the frame without waiting (the common case), or
        an awaitable that completes once the transport can take more; the core sends nothing
        else on this socket until it has completed. Raises ``ConnectionError`` when closed.
        """
        ...

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code`` and ``reason``; idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """The upgrade request, whatever the runtime: what ``authenticate(request)`` receives.

    ``headers`` is case-insensitive; ``query_params`` keeps the first value of each name.
    """

    path: str
    headers: Mapping[str, str]
    query_params: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    client_ip: str | None = None
    subprotocols: tuple[str, ...] = ()


#: the prefix of a credential offered as a subprotocol (``bearer.<token>``): never echoed
_BEARER = "bearer."


def chosen_subprotocol(offered: tuple[str, ...]) -> str | None:
    """The subprotocol an accepted upgrade names: the first one offered that is not a
    ``bearer.<token>`` credential (echoing it would put the token in the response and in
    logs), or None. Browsers fail a connection whose answer names none of theirs, so the
    one a browser offers beside its token (``["bearer." + token, "chat"]``) is chosen."""
    for protocol in offered:
        if not protocol.lower().startswith(_BEARER):
            return protocol
    return None
