"""wskit: a schema-first WebSocket framework for Python, wire-compatible with WS-Kit.

Declare message contracts with :func:`message` and :func:`rpc`, route them with a
:class:`Router`, and serve it with :func:`serve` (or test it with
:class:`wskit.testing.TestClient`). See the README for a tour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wskit.connection import OverflowPolicy, QueueLimits
from wskit.context import Context
from wskit.errors import CloseCode, ErrorCode, UsageError, WsKitError, WsKitException
from wskit.router import Router
from wskit.schema.declarations import MessageSchema, RpcSchema, message, rpc
from wskit.schema.validator import OutboundValidationError
from wskit.topics import TopicPolicy
from wskit.transports.base import HandshakeRequest

if TYPE_CHECKING:
    from wskit.server import Server, serve, serve_async

__version__ = "0.1.0"

#: loaded on first use: ``import wskit`` loads no server library (a process that only
#: declares messages, or serves them with ASGI, never imports aiohttp)
_SERVER_NAMES = frozenset({"Server", "serve", "serve_async"})


def __getattr__(name: str) -> Any:
    if name in _SERVER_NAMES:
        from wskit import server

        return getattr(server, name)
    raise AttributeError(f"module 'wskit' has no attribute {name!r}")


__all__ = [
    "CloseCode",
    "Context",
    "ErrorCode",
    "HandshakeRequest",
    "MessageSchema",
    "OutboundValidationError",
    "OverflowPolicy",
    "QueueLimits",
    "Router",
    "RpcSchema",
    "Server",
    "TopicPolicy",
    "UsageError",
    "WsKitError",
    "WsKitException",
    "__version__",
    "message",
    "rpc",
    "serve",
    "serve_async",
]
