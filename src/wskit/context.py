"""The handler's view of one inbound message (or one lifecycle event) and its connection.

A :class:`Context` is created per message and carries everything a handler or middleware
needs: the validated ``payload``, ``meta``, the connection's ``data``, and the verbs to answer
(``send``, ``reply``, ``progress``, ``error``), manage topics and publish. Outbound payloads
are validated and encoded by the router's schema backend; frames go to the connection's
bounded queue, so no verb waits for the peer to read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, cast

from typing_extensions import TypeVar

from wskit.errors import UNSET, CloseCode, ErrorCode, RecoveryError, UsageError, WsKitError, _Unset, error_payload
from wskit.logs import LogBudget
from wskit.protocol import ERROR_TYPE, PROGRESS_TYPE, RPC_ERROR_TYPE, Position, dumps, frame, type_prefix
from wskit.schema.declarations import MessageSchema, RpcSchema
from wskit.schema.validator import payload_json

if TYPE_CHECKING:
    from wskit.connection import Connection
    from wskit.router import Router
    from wskit.runtime import Runtime

__all__ = ["Context", "Position", "error_frame"]


P = TypeVar("P")
#: the connection data's type: ``Context[Payload, AppData]`` types ``ctx.data`` as ``AppData``
#: (a TypedDict, say); read-only, hence covariant, and a plain mapping when not given
D = TypeVar("D", covariant=True, default=Mapping[str, Any])

log = logging.getLogger("wskit.context")

_EMPTY_META = b"{}"
_PROGRESS_PREFIX = type_prefix(PROGRESS_TYPE)
_ERROR_PREFIX = type_prefix(ERROR_TYPE)
_RPC_ERROR_PREFIX = type_prefix(RPC_ERROR_TYPE)


def _json_str(text: str) -> bytes:
    # correlation ids are nearly always plain ASCII: skip the JSON encoder for those
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode() + b'"'
    return dumps(text)


def _meta_bytes(meta: Mapping[str, Any] | None, correlation_id: str | None) -> bytes:
    if correlation_id is None:
        return dumps(dict(meta)) if meta else _EMPTY_META
    if not meta:
        return b'{"correlationId":' + _json_str(correlation_id) + b"}"
    merged: dict[str, Any] = {"correlationId": correlation_id}
    merged.update(meta)
    merged["correlationId"] = correlation_id
    return dumps(merged)


def error_frame(payload: dict[str, Any], correlation_id: str | None, meta: Mapping[str, Any] | None = None) -> bytes:
    """An ``RPC_ERROR`` frame when answering a message with a correlationId, else ``ERROR``."""
    prefix = _RPC_ERROR_PREFIX if correlation_id is not None else _ERROR_PREFIX
    return frame(prefix, _meta_bytes(meta, correlation_id), dumps(payload))


_BAN_CHECK_FAILURES = LogBudget()

#: ban checks started by assign_data (referenced so they are not garbage-collected)
_ban_checks: set[asyncio.Task[None]] = set()


async def _close_if_banned(runtime: Runtime, conn: Connection, user_id: str) -> None:
    """Close ``conn`` with 1008 when ``user_id`` is banned (assign_data's background check)."""
    try:
        banned = await runtime.hub.broker.is_banned(user_id)
    except Exception as exc:  # noqa: BLE001 - fail open, as at the upgrade: an outage must not lock everyone out
        tail = _BAN_CHECK_FAILURES.take()  # one per sign-in for as long as the outage lasts
        if tail is not None:
            log.warning("ban check for user %s failed (%s); letting the connection in%s", user_id, exc, tail)
        return
    if banned and conn.data.get("user_id") is not None and str(conn.data["user_id"]) == user_id:
        log.info("client %s: user %s is banned; closing with 1008", conn.client_id, user_id)
        conn.close_soon(CloseCode.POLICY_VIOLATION, "banned")


class Context(Generic[P, D]):
    """One message's context. ``Context[P]`` types ``payload`` as ``P``; ``Context[P, AppData]``
    also types ``data`` as ``AppData``.

    Attributes: ``payload``, ``meta`` (strict inbound meta), ``type``, ``client_id``,
    ``received_at`` (ms since the epoch), ``correlation_id`` (None for events without one),
    ``deadline`` (``loop.time()`` by which an RPC should answer, from ``meta.timeoutMs``).
    """

    __slots__ = (
        "answered",
        "cancelled",
        "client_id",
        "close_code",
        "close_reason",
        "connection",
        "correlation_id",
        "deadline",
        "error_code",
        "meta",
        "payload",
        "received_at",
        "rpc",
        "runtime",
        "type",
    )

    def __init__(
        self,
        runtime: Runtime,
        connection: Connection,
        type_name: str,
        payload: P,
        meta: dict[str, Any],
        received_at: int,
        *,
        rpc: RpcSchema[Any, Any] | None = None,
    ) -> None:
        #: the runtime serving this message (hub, broker, codec, policies)
        self.runtime = runtime
        self.connection = connection
        self.type = type_name
        self.payload = payload
        self.meta = meta
        self.received_at = received_at
        self.client_id = connection.client_id
        self.rpc = rpc
        correlation_id = meta.get("correlationId") if meta else None
        self.correlation_id: str | None = correlation_id
        self.deadline: float | None = None
        #: an RPC's terminal answer (reply or error) has been sent
        self.answered = False
        #: the wire code of the error this message was answered with (None: none sent);
        #: traces read it for handlers that answer with ctx.error() instead of raising
        self.error_code: str | None = None
        #: the client cancelled this RPC, or its deadline passed
        self.cancelled = False
        self.close_code: int | None = None
        self.close_reason: str | None = None

    @property
    def router(self) -> Router[Any]:
        """The application's router (``ctx.router.presence(...)``, ``ctx.router.publish(...)``)."""
        return self.runtime.router

    # -- connection data -------------------------------------------------------------------

    @property
    def data(self) -> D:
        """The connection's data (read-only): what ``authenticate`` returned, plus assignments.

        A read-only view at run time whatever ``D`` says: change it with :meth:`assign_data`.
        """
        return cast(D, MappingProxyType(self.connection.data))

    def assign_data(self, **changes: Any) -> None:
        """Merge ``changes`` into the connection's data (visible to its later messages).

        Setting ``user_id`` authenticates the connection (``send_to_user`` finds it). A new
        ``user_id`` is also checked against the ban list (``router.ban_user``), which the
        upgrade alone cannot do for users who sign in later: the check runs in the background
        (this method stays synchronous) and a banned user's connection is closed with 1008
        ``banned`` as soon as the broker answers, one Redis round trip later at most; frames
        queued after that are not sent. When the broker cannot be asked the user is let in and
        a warning logged, as at the upgrade.
        """
        conn = self.connection
        old_user = conn.data.get("user_id")
        conn.data.update(changes)
        if "user_id" in changes:
            new_user = changes["user_id"]
            self.runtime.hub.rebind_user(conn, old_user, new_user)
            if new_user is not None and new_user != old_user and not conn.closed:
                task = asyncio.get_running_loop().create_task(_close_if_banned(self.runtime, conn, str(new_user)))
                _ban_checks.add(task)
                task.add_done_callback(_ban_checks.discard)
        if conn.watchdog is not None and ("token_exp" in changes or "user_id" in changes):
            conn.watchdog.rearm(conn)

    @property
    def user_id(self) -> Any:
        """``data["user_id"]``: the authenticated user, None when anonymous."""
        return self.connection.data.get("user_id")

    @property
    def topics(self) -> frozenset[str]:
        """The topics this connection is subscribed to."""
        return frozenset(self.connection.topics)

    @property
    def is_rpc(self) -> bool:
        return self.rpc is not None

    def time_remaining(self) -> float | None:
        """Seconds left before this RPC's deadline (None without one; may be negative)."""
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()

    # -- answering -------------------------------------------------------------------------

    async def send(
        self,
        schema: MessageSchema[Any],
        payload: Any = None,
        *,
        meta: Mapping[str, Any] | None = None,
        inherit_correlation_id: bool = False,
    ) -> bool:
        """Send a message to this connection. False when the connection could not take it.

        Raises :class:`~wskit.schema.validator.OutboundValidationError` (nothing is sent) when
        ``payload`` fails ``schema``.
        """
        correlation_id = self.correlation_id if inherit_correlation_id else None
        data = self.runtime.codec.encode(schema, payload, meta=_meta_bytes(meta, correlation_id))
        queued = self.connection.send_nowait(data)
        if queued:
            telemetry = self.runtime.dispatcher.telemetry
            if telemetry is not None:
                telemetry.sent_type(schema.type)
        return queued

    async def reply(self, payload: Any = None, *, meta: Mapping[str, Any] | None = None) -> bool:
        """Answer this RPC with its declared response. Only the first terminal answer counts.

        Raises :class:`UsageError` outside an RPC handler.
        """
        rpc = self._require_rpc("reply")
        data = self.runtime.codec.encode(rpc.response, payload, meta=_meta_bytes(meta, self.correlation_id))
        if self.answered:
            log.warning(
                "RPC %s (correlationId %r): reply after the terminal answer dropped", self.type, self.correlation_id
            )
            return False
        self.answered = True
        queued = self.connection.send_nowait(data)
        if queued:
            telemetry = self.runtime.dispatcher.telemetry
            if telemetry is not None:
                telemetry.sent_type(rpc.response.type)
        return queued

    async def progress(self, payload: Any = None, *, meta: Mapping[str, Any] | None = None) -> bool:
        """Send a non-terminal progress frame (``$ws:rpc-progress``) for this RPC."""
        self._require_rpc("progress")
        if self.answered:
            log.warning("RPC %s: progress after the terminal answer dropped", self.type)
            return False
        # no declared schema to encode by: a model, Struct, dataclass or plain data, as JSON
        body = payload_json(payload) if payload is not None else None
        data = frame(_PROGRESS_PREFIX, _meta_bytes(meta, self.correlation_id), body)
        queued = self.connection.send_nowait(data)
        if queued:
            telemetry = self.runtime.dispatcher.telemetry
            if telemetry is not None:
                telemetry.sent[PROGRESS_TYPE] += 1
        return queued

    async def error(
        self,
        code: ErrorCode | str,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        retry_after_ms: int | _Unset | None = UNSET,
        retryable: bool | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> bool:
        """Answer with an error: ``RPC_ERROR`` when the message had a correlationId, else ``ERROR``.

        In an RPC it is the terminal answer (only the first counts).
        """
        payload = error_payload(code, message, details=details, retry_after_ms=retry_after_ms, retryable=retryable)
        return self._send_error(payload, meta)

    def _send_error(self, payload: dict[str, Any], meta: Mapping[str, Any] | None = None) -> bool:
        # encoded first: details that are not JSON raise here, before the RPC counts as answered
        data = error_frame(payload, self.correlation_id, meta)
        if self.rpc is not None:
            if self.answered:
                log.warning(
                    "RPC %s (correlationId %r): error %s after the terminal answer dropped",
                    self.type,
                    self.correlation_id,
                    payload.get("code"),
                )
                return False
            self.answered = True
        self.error_code = code = str(payload.get("code"))
        queued = self.connection.send_nowait(data)
        if queued:
            telemetry = self.runtime.dispatcher.telemetry
            if telemetry is not None:
                telemetry.error_sent(code, self.correlation_id is not None)
        return queued

    def fail(self, error: WsKitError) -> bool:
        """Send ``error`` as this message's answer (what raising it in a handler does)."""
        return self._send_error(error.to_payload())

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close this connection with ``code`` (4000-4999 for application reasons)."""
        await self.connection.close(code, reason)

    # -- topics ----------------------------------------------------------------------------

    async def subscribe(self, topic: str, offset: int | None = None, epoch: str | None = None) -> Position | None:
        """Join ``topic``; returns its history position ``(offset, epoch)`` when it keeps history.

        With ``offset`` and ``epoch`` (the last ones this client saw), every message published
        after them is delivered first, in order, then live ones, without gap or duplicate.
        Raises ``WsKitError``: ``FAILED_PRECONDITION`` (``details.reason == "recovery"``) when
        the history no longer covers the gap, or whatever the topic policy refuses.
        """
        routes = self.runtime.routes
        policy = routes.topic_policy
        name = policy.check_name(topic)
        conn = self.connection
        history = routes.history_for(name)
        if offset is not None or epoch is not None:
            if history is None:
                raise RecoveryError(name, "This topic keeps no history to recover from")
            if not isinstance(offset, int) or isinstance(offset, bool) or not isinstance(epoch, str):
                raise WsKitError(ErrorCode.INVALID_ARGUMENT, "Recovery needs an integer offset and a string epoch")
        if name not in conn.topics:
            if len(conn.topics) >= policy.max_topics_per_connection:
                raise WsKitError(
                    ErrorCode.RESOURCE_EXHAUSTED,
                    f"Too many topics on this connection (limit {policy.max_topics_per_connection})",
                    retry_after_ms=None,
                )
            await policy.check_access(self, name, "subscribe")
        return await self.runtime.hub.join(conn, name, history, offset, epoch)

    async def unsubscribe(self, topic: str) -> None:
        """Leave ``topic`` (nothing happens when not subscribed)."""
        name = self.runtime.routes.topic_policy.check_name(topic)
        await self.runtime.hub.unsubscribe(self.connection, name)

    async def publish(
        self,
        topic: str,
        schema: MessageSchema[Any],
        payload: Any = None,
        *,
        exclude_self: bool = False,
        meta: Mapping[str, Any] | None = None,
        overflow: str | None = None,
    ) -> None:
        """Publish to every subscriber of ``topic`` (this connection too unless ``exclude_self``).

        ``overflow``: this message's policy for subscribers whose send queue is full.
        """
        policy = self.runtime.routes.topic_policy
        name = policy.check_name(topic)
        await policy.check_access(self, name, "publish")
        exclude = self.client_id if exclude_self else None
        await self.runtime.publish(name, schema, payload, meta=meta, exclude=exclude, overflow=overflow)

    @property
    def positions(self) -> Mapping[str, Position]:
        """Last delivered ``(offset, epoch)`` per history topic of this connection."""
        # a topic whose recovery is being fetched holds a buffer, not a position, meanwhile
        return {topic: pos for topic, pos in self.connection.positions.items() if isinstance(pos, Position)}

    def _require_rpc(self, verb: str) -> RpcSchema[Any, Any]:
        if self.rpc is None:
            raise UsageError(f"ctx.{verb}() is only for RPC handlers; {self.type!r} is an event (use ctx.send)")
        return self.rpc

    def __repr__(self) -> str:
        return f"<Context {self.type} client={self.client_id}>"
