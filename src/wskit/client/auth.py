"""Where the token comes from and how it travels with the upgrade request.

The token is asked for on every (re)connect, so a provider that refreshes an expiring JWT is
all an application needs: the client never reuses a token the provider would not give again.
It travels the way the server reads it (``guards/jwt.py``): the ``access_token`` query
parameter by default (what the WS-Kit client sends), ``Authorization: Bearer``, or the
``bearer.<token>`` WebSocket subprotocol (for browsers, which cannot set headers).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from yarl import URL

from wskit.errors import ConfigError

__all__ = ["Handshake", "TokenPlace", "TokenProvider", "TokenSource"]

#: a token, or a function (sync or async) returning the current one (None: connect without)
TokenProvider = str | Callable[[], str | None] | Callable[[], Awaitable[str | None]] | None


class TokenPlace(StrEnum):
    """Where the token goes in the upgrade request."""

    QUERY = "query"
    HEADER = "header"
    SUBPROTOCOL = "subprotocol"


@dataclass(frozen=True, slots=True)
class Handshake:
    """What one upgrade request carries: the URL, extra headers, offered subprotocols."""

    url: URL
    headers: dict[str, str] = field(default_factory=dict)
    protocols: tuple[str, ...] = ()


class TokenSource:
    """Asks the provider for a token and places it in the upgrade request."""

    def __init__(self, provider: TokenProvider, place: TokenPlace | str = TokenPlace.QUERY) -> None:
        try:
            self.place = TokenPlace(place)
        except ValueError:
            raise ConfigError(f"token_place must be one of {[p.value for p in TokenPlace]}, got {place!r}") from None
        if provider is not None and not isinstance(provider, str) and not callable(provider):
            raise ConfigError(f"token must be a string or a (sync or async) function, got {type(provider).__name__}")
        self._provider = provider

    @property
    def renewable(self) -> bool:
        """Whether asking again may give another token (a provider, not a fixed string)."""
        return callable(self._provider)

    async def get(self) -> str | None:
        """The token to connect with now (calls the provider, awaiting it when async)."""
        provider = self._provider
        if provider is None or isinstance(provider, str):
            return provider
        value = provider()
        if inspect.isawaitable(value):
            value = await value
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"the token provider returned {type(value).__name__}, not a string or None")
        return value

    def handshake(
        self, url: URL, token: str | None, *, headers: dict[str, str], protocols: tuple[str, ...]
    ) -> Handshake:
        """The upgrade request for ``url`` carrying ``token`` in the chosen place."""
        if not token:
            return Handshake(url, dict(headers), protocols)
        if self.place is TokenPlace.QUERY:
            return Handshake(url.update_query(access_token=token), dict(headers), protocols)
        if self.place is TokenPlace.HEADER:
            return Handshake(url, {**headers, "Authorization": f"Bearer {token}"}, protocols)
        return Handshake(url, dict(headers), (f"bearer.{token}", *protocols))
