"""What the ASGI host does before a WebSocket is accepted: the scope as a
:class:`~wskit.transports.base.HandshakeRequest`, and a refused upgrade as an HTTP answer.

Kept apart from :mod:`wskit.transports.asgi` (the accepted connection) as
:mod:`wskit.transports.aiohttp_upgrade` is from the aiohttp host's read loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from multidict import CIMultiDict, CIMultiDictProxy

from wskit.admission import Refusal
from wskit.errors import CloseCode
from wskit.transports.base import HandshakeRequest

if TYPE_CHECKING:
    from wskit.runtime import Runtime

__all__ = ["Message", "Receive", "Scope", "Send", "handshake_request", "parse_cookies", "refuse"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def parse_cookies(header: str | None) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, eq, value = part.partition("=")
        if eq and name.strip():
            cookies.setdefault(name.strip(), value.strip().strip('"'))
    return cookies


def handshake_request(scope: Scope, path: str, runtime: Runtime) -> HandshakeRequest:
    """The runtime-neutral view of a WebSocket scope (``path`` relative to ``root_path``)."""
    headers = CIMultiDictProxy(CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]))
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    return HandshakeRequest(
        path=path,
        headers=headers,
        # the first value of each name, as aiohttp's view of the query gives it
        query_params={name: value for name, value in reversed(parse_qsl(query, keep_blank_values=True))},
        cookies=parse_cookies(headers.get("cookie")),
        client_ip=runtime.admission.resolve_ip(client[0] if client else None, headers),
        subprotocols=tuple(scope.get("subprotocols") or ()),
    )


async def refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Answer a refused upgrade: its HTTP status where the host has the
    ``websocket.http.response`` extension, else a close before accept (the host answers 403)."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION, "reason": ""})
        return
    body = refusal.text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers.items()]
    await send({"type": "websocket.http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
