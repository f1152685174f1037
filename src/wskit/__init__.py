"""wskit: a schema-first WebSocket framework for Python, wire-compatible with WS-Kit.

Declare message contracts with :func:`message` and :func:`rpc`, route them with a
:class:`Router`, and serve it with :func:`serve` (or test it with
:class:`wskit.testing.TestClient`). See the README for a tour.
"""

from __future__ import annotations

from wskit.connection import OverflowPolicy, QueueLimits
from wskit.context import Context
from wskit.errors import CloseCode, ErrorCode, UsageError, WsKitError, WsKitException
from wskit.router import Router
from wskit.schema.declarations import MessageSchema, RpcSchema, message, rpc
from wskit.schema.validator import OutboundValidationError
from wskit.server import Server, serve, serve_async
from wskit.topics import TopicPolicy
from wskit.transports.base import HandshakeRequest

__version__ = "0.1.0"

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
