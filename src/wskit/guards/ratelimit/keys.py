"""Key functions: which bucket a message is charged to (``user:u1``, ``ip:10.0.0.1``, ``conn:c1``...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wskit.context import Context

__all__ = ["KeyFunc", "by_connection", "by_ip", "by_type", "by_user_or_connection", "by_user_or_ip"]

#: A function naming the bucket a message is charged to.
KeyFunc = Callable[[Context[Any, Any]], str]


def by_connection(ctx: Context[Any, Any]) -> str:
    """One bucket per connection: ``conn:<client_id>``."""
    return f"conn:{ctx.client_id}"


def by_ip(ctx: Context[Any, Any]) -> str:
    """One bucket per client IP (``ip:<address>``); per connection when the IP is unknown."""
    ip = ctx.connection.client_ip
    return f"ip:{ip}" if ip else by_connection(ctx)


def by_user_or_ip(ctx: Context[Any, Any]) -> str:
    """``user:<user_id>`` when authenticated, else the client IP, else the connection.

    The prefixes keep a user named like an address apart from that address.
    """
    user = ctx.data.get("user_id")
    return f"user:{user}" if user is not None else by_ip(ctx)


def by_user_or_connection(ctx: Context[Any, Any]) -> str:
    """``user:<user_id>`` when authenticated, else the connection (``MESSAGE_RATE_LIMIT``'s rule)."""
    user = ctx.data.get("user_id")
    return f"user:{user}" if user is not None else by_connection(ctx)


def by_type(ctx: Context[Any, Any]) -> str:
    """One bucket per sender (as :func:`by_user_or_ip`) and message type: ``user:u1:SAY``."""
    return f"{by_user_or_ip(ctx)}:{ctx.type}"
