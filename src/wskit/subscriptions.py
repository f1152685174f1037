"""Client subscriptions: what the server does with ``$ws:subscribe`` and ``$ws:unsubscribe``.

A client may join and leave topics itself, without an application message for it, but only
topics the router allows (``router.allow_subscribe(pattern)``), and each subscribe still goes
through the topic policy (name, per-connection limit, ``authorize``) and, on a topic with
history, recovery from the client's last position (``ctx.subscribe``, which this builds on).
The frames are in docs/protocol.md::

    -> {"type":"$ws:subscribe","meta":{"correlationId":"c1"},"payload":{"topic":"feed:news","offset":4,"epoch":"e"}}
    <- (the messages published after offset 4, in order)
    <- {"type":"$ws:subscribed","meta":{"correlationId":"c1"},"payload":{"topic":"feed:news","offset":9,"epoch":"e"}}
    -> {"type":"$ws:unsubscribe","meta":{"correlationId":"c2"},"payload":{"topic":"feed:news"}}
    <- {"type":"$ws:unsubscribed","meta":{"correlationId":"c2"},"payload":{"topic":"feed:news"}}

A refusal is the ``RPC_ERROR`` of the request's correlationId. The dispatcher compiles both
handlers behind the same guards and global middleware as every routed message (rate limits,
``require_auth``, draining), and runs them in the connection's read loop like events: a
client's messages sent after its subscribe are handled after it, so what it publishes next
cannot overtake its subscription.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from wskit.context import Context
from wskit.errors import ErrorCode, WsKitError
from wskit.protocol import (
    INBOUND_META_KEYS,
    SUBSCRIBE_TYPE,
    SUBSCRIBED_TYPE,
    UNSUBSCRIBE_TYPE,
    UNSUBSCRIBED_TYPE,
    dumps,
    frame,
    type_prefix,
)

__all__ = ["HANDLERS", "MAX_EPOCH_LENGTH", "sanitize_meta", "subscribe", "unsubscribe"]

#: longest ``epoch`` accepted (the server's own are 32 characters or fewer): anything longer
#: cannot be one of ours, and would only be carried to the broker for nothing
MAX_EPOCH_LENGTH: Final = 128
#: unknown keys named in a refusal, at most (the answer stays small whatever was sent)
_MAX_ISSUES: Final = 5

_SUBSCRIBE_KEYS: Final = frozenset({"topic", "offset", "epoch"})
_UNSUBSCRIBE_KEYS: Final = frozenset({"topic"})
_SUBSCRIBED_PREFIX: Final = type_prefix(SUBSCRIBED_TYPE)
_UNSUBSCRIBED_PREFIX: Final = type_prefix(UNSUBSCRIBED_TYPE)


async def sanitize_meta(ctx: Context[Any, Any], call_next: Callable[[], Awaitable[None]]) -> None:
    """First step of both pipelines, before any guard: a ``correlationId`` that is not a
    string is dropped from the context (these frames' meta is not checked by a schema), so
    a guard's refusal is an ``ERROR`` without one instead of an unencodable frame. The
    handler then refuses the frame itself."""
    if ctx.correlation_id is not None and not isinstance(ctx.correlation_id, str):
        ctx.correlation_id = None
    await call_next()


def _invalid(message: str, issues: list[dict[str, Any]] | None = None) -> WsKitError:
    return WsKitError(ErrorCode.INVALID_ARGUMENT, message, details={"issues": issues} if issues else None)


def _checked(ctx: Context[Any, Any], allowed_keys: frozenset[str]) -> tuple[str, dict[str, Any]]:
    """The correlationId and payload of a ``$ws:`` subscription frame, or ``INVALID_ARGUMENT``."""
    what = ctx.type
    correlation_id = ctx.meta.get("correlationId") if isinstance(ctx.meta, Mapping) else None
    if not isinstance(correlation_id, str):
        raise _invalid(f"{what} needs meta.correlationId (a string)")
    unknown = sorted(key for key in ctx.meta if key not in INBOUND_META_KEYS)
    if unknown:
        issues = [{"path": ["meta", key[:64]], "message": "Unknown key"} for key in unknown[:_MAX_ISSUES]]
        raise _invalid(f"{what}: unknown meta keys", issues)
    payload = ctx.payload
    if not isinstance(payload, dict):
        raise _invalid(f"{what} needs a payload object with a topic", [{"path": ["payload"], "message": "Required"}])
    unknown = sorted(key for key in payload if key not in allowed_keys)
    if unknown:
        issues = [{"path": ["payload", key[:64]], "message": "Unknown key"} for key in unknown[:_MAX_ISSUES]]
        raise _invalid(f"{what}: unknown payload keys", issues)
    if "topic" not in payload:
        raise _invalid(f"{what} needs payload.topic", [{"path": ["payload", "topic"], "message": "Required"}])
    return correlation_id, payload


def _allowed_name(ctx: Context[Any, Any], topic: object) -> str:
    """The normalised topic name, if clients may subscribe to it themselves."""
    routes = ctx.runtime.routes
    name = routes.topic_policy.check_name(topic)  # INVALID_ARGUMENT for a bad name
    if not routes.allows_subscribe(name):
        raise WsKitError(
            ErrorCode.PERMISSION_DENIED,
            "Clients may not subscribe to this topic themselves",
            details={"topic": name},
        )
    return name


def _position(payload: dict[str, Any]) -> tuple[int | None, str | None]:
    """The client's last position (``offset`` and ``epoch``, both or neither)."""
    offset, epoch = payload.get("offset"), payload.get("epoch")
    if offset is None and epoch is None:
        return None, None
    issues: list[dict[str, Any]] = []
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        issues.append({"path": ["payload", "offset"], "message": "Expected an integer >= 0 (with epoch)"})
    if not isinstance(epoch, str) or not epoch or len(epoch) > MAX_EPOCH_LENGTH:
        issues.append(
            {"path": ["payload", "epoch"], "message": f"Expected a string of 1-{MAX_EPOCH_LENGTH} characters"}
        )
    if issues:
        raise _invalid("Recovery needs both offset (an integer) and epoch (a string)", issues)
    return offset, epoch


async def subscribe(ctx: Context[Any, Any]) -> None:
    """``$ws:subscribe``: join the topic (after what the client missed, when it gave its
    position), then confirm with the position it is at now."""
    correlation_id, payload = _checked(ctx, _SUBSCRIBE_KEYS)
    name = _allowed_name(ctx, payload["topic"])
    offset, epoch = _position(payload)
    hub = ctx.runtime.hub
    conn = ctx.connection
    was_tagged = conn in hub.tagged.get(name, ())
    hub.tag(conn, name)  # before the join: no delivery may reach it without its topic
    try:
        position = await ctx.subscribe(name, offset, epoch)
    except BaseException:
        if not was_tagged:
            hub.untag(conn, name)
        raise
    body = {
        "topic": name,
        "offset": position.offset if position is not None else None,
        "epoch": position.epoch if position is not None else None,
    }
    _confirm(ctx, SUBSCRIBED_TYPE, frame(_SUBSCRIBED_PREFIX, dumps({"correlationId": correlation_id}), dumps(body)))


async def unsubscribe(ctx: Context[Any, Any]) -> None:
    """``$ws:unsubscribe``: leave the topic (confirmed also when the client was not in it)."""
    correlation_id, payload = _checked(ctx, _UNSUBSCRIBE_KEYS)
    name = _allowed_name(ctx, payload["topic"])
    await ctx.unsubscribe(name)
    body = {"topic": name}
    _confirm(ctx, UNSUBSCRIBED_TYPE, frame(_UNSUBSCRIBED_PREFIX, dumps({"correlationId": correlation_id}), dumps(body)))


def _confirm(ctx: Context[Any, Any], type_name: str, data: bytes) -> None:
    """Queue a confirmation (counted as sent when it was queued)."""
    if ctx.connection.send_nowait(data):
        telemetry = ctx.runtime.dispatcher.telemetry
        if telemetry is not None:
            telemetry.sent[type_name] += 1


#: the framework's own routes, by type: what the dispatcher compiles beside the router's
HANDLERS: Final[Mapping[str, Callable[[Context[Any, Any]], Awaitable[None]]]] = {
    SUBSCRIBE_TYPE: subscribe,
    UNSUBSCRIBE_TYPE: unsubscribe,
}
