"""The envelope and the framework's own frames as JSON Schema (draft-07), for the exported contract.

Application messages get their payload schemas from the backend (:mod:`wskit.schema.jsonschema`);
what wraps them (``type``, ``meta``) and the frames the framework itself sends and reads
(errors, RPC progress and cancel, heartbeat, shutdown, client subscriptions, presence) are
written here, from the same constants the runtime uses, so the document says what the server
does: inbound ``meta`` is strict (PROTOCOL.md), outbound ``meta`` carries what handlers pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from wskit.errors import ErrorCode
from wskit.protocol import (
    CANCEL_TYPE,
    ERROR_TYPE,
    HEARTBEAT_ACK_TYPE,
    HEARTBEAT_TYPE,
    PRESENCE_TYPE,
    PROGRESS_TYPE,
    RPC_ERROR_TYPE,
    SHUTDOWN_TYPE,
    SUBSCRIBE_TYPE,
    SUBSCRIBED_TYPE,
    UNSUBSCRIBE_TYPE,
    UNSUBSCRIBED_TYPE,
)
from wskit.schema.validator import MAX_CORRELATION_ID_LENGTH, MAX_TRACEPARENT_LENGTH, MAX_TRACESTATE_LENGTH
from wskit.subscriptions import MAX_EPOCH_LENGTH

__all__ = [
    "ERROR_PAYLOAD",
    "INBOUND_META",
    "OUTBOUND_META",
    "REPLY_META",
    "SCHEMAS",
    "SCHEMA_PREFIX",
    "Frame",
    "envelope",
    "framework_frames",
    "inbound_meta",
    "outbound_meta",
]

#: Names of the framework's components start with this: no model class can be called so
#: (the libraries name components after classes, ``module.Class`` on a clash).
SCHEMA_PREFIX: Final = "wskit."
INBOUND_META: Final = SCHEMA_PREFIX + "InboundMeta"
OUTBOUND_META: Final = SCHEMA_PREFIX + "OutboundMeta"
REPLY_META: Final = SCHEMA_PREFIX + "ReplyMeta"
ERROR_PAYLOAD: Final = SCHEMA_PREFIX + "ErrorPayload"

_STRING: Final = {"type": "string"}
_CORRELATION_ID: Final = {
    "type": "string",
    "maxLength": MAX_CORRELATION_ID_LENGTH,
    "description": "Set by the client on a request; the answers to it carry the same one.",
}
#: the keys every inbound message may carry in meta (wskit.protocol.INBOUND_META_KEYS)
_INBOUND_KEYS: Final = {
    "timestamp": {"type": "number", "description": "When the client sent it, ms since the epoch."},
    "correlationId": _CORRELATION_ID,
    "timeoutMs": {"type": "number", "description": "How long the client waits for the answer of a request."},
    "traceparent": {"type": "string", "maxLength": MAX_TRACEPARENT_LENGTH, "description": "W3C Trace Context."},
    "tracestate": {"type": "string", "maxLength": MAX_TRACESTATE_LENGTH, "description": "W3C Trace Context."},
}
#: what the server itself puts in outbound meta (besides the keys a handler passes)
_OUTBOUND_KEYS: Final = {
    "correlationId": {**_CORRELATION_ID, "description": "On the answers to a request: the request's own."},
    "topic": {"type": "string", "description": "The topic of a delivery (client subscriptions, topics with history)."},
    "offset": {"type": "integer", "minimum": 0, "description": "Position of a delivery on a topic with history."},
    "epoch": {"type": "string", "description": "The history's epoch (changes when the history is reset)."},
}


def inbound_meta(extra: Mapping[str, dict[str, Any]], *, correlated: bool = False) -> dict[str, Any]:
    """The strict ``meta`` of an inbound message with ``extra`` declared keys (unknown keys
    are refused ``INVALID_ARGUMENT``); ``correlated``: ``correlationId`` is required."""
    if not extra and not correlated:
        return {"$ref": _ref(INBOUND_META)}
    meta: dict[str, Any] = {"type": "object", "properties": {**_INBOUND_KEYS, **extra}}
    if correlated:
        meta["required"] = ["correlationId"]
    meta["additionalProperties"] = False
    return meta


def outbound_meta(extra: Mapping[str, dict[str, Any]], *, reply: bool = False) -> dict[str, Any]:
    """The ``meta`` of an outbound message: open, since handlers may pass keys of their own;
    ``reply``: an answer to a request, which always carries its ``correlationId``."""
    if not extra:
        return {"$ref": _ref(REPLY_META if reply else OUTBOUND_META)}
    meta: dict[str, Any] = {"type": "object", "properties": {**_OUTBOUND_KEYS, **extra}}
    if reply:
        meta["required"] = ["correlationId"]
    return meta


def envelope(
    type_name: str,
    *,
    meta: dict[str, Any] | None,
    payload: dict[str, Any] | None,
    meta_required: bool = False,
    payload_required: bool = False,
) -> dict[str, Any]:
    """One frame: ``{"type", "meta"?, "payload"?}``. Other root keys are ignored by both ends,
    so the root stays open."""
    properties: dict[str, Any] = {"type": {"type": "string", "const": type_name}}
    required = ["type"]
    if meta is not None:
        properties["meta"] = meta
        required += ["meta"] if meta_required else []
    if payload is not None:
        properties["payload"] = payload
        required += ["payload"] if payload_required else []
    return {"type": "object", "properties": properties, "required": required}


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"


def _object(properties: dict[str, Any], required: list[str], **more: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False, **more}


#: the shared schemas the frames and application messages refer to
SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    INBOUND_META: {
        "type": "object",
        "description": "meta of a client's message: these keys only (others are refused INVALID_ARGUMENT).",
        "properties": _INBOUND_KEYS,
        "additionalProperties": False,
    },
    OUTBOUND_META: {
        "type": "object",
        "description": "meta of a server's message: these keys, and any the handler passed.",
        "properties": _OUTBOUND_KEYS,
    },
    REPLY_META: {
        "type": "object",
        "description": "meta of an answer to a request: its correlationId, and any keys the handler passed.",
        "properties": _OUTBOUND_KEYS,
        "required": ["correlationId"],
    },
    ERROR_PAYLOAD: _object(
        {
            "code": {
                "anyOf": [
                    {"type": "string", "enum": [str(code) for code in ErrorCode]},
                    {"type": "string", "description": "An application's own code, e.g. ROOM_FULL."},
                ]
            },
            "message": _STRING,
            "details": {"type": "object"},
            "retryAfterMs": {"type": ["integer", "null"], "minimum": 0},
            "retryable": {"type": "boolean"},
        },
        ["code", "message"],
    ),
}


@dataclass(frozen=True, slots=True)
class Frame:
    """One of the framework's frames: its type, direction (``inbound``: client to server), a
    one-line summary, its envelope schema, and whether it carries ``meta.correlationId``."""

    type: str
    inbound: bool
    summary: str
    envelope: dict[str, Any]
    correlated: bool = False
    #: the frames answering this one (for request/reply operations)
    replies: tuple[str, ...] = ()


def framework_frames(*, rpcs: bool, presence: bool, topic_pattern: str) -> list[Frame]:
    """The framework's frames a router with these features exchanges: progress and cancel only
    with RPCs, presence only on topics that announce it. ``topic_pattern``: valid topic names."""
    reply = {"$ref": _ref(REPLY_META)}
    topic = {"type": "string", "pattern": topic_pattern}
    epoch = {"type": "string", "minLength": 1, "maxLength": MAX_EPOCH_LENGTH}
    error = {"$ref": _ref(ERROR_PAYLOAD)}
    frames = [
        Frame(
            HEARTBEAT_TYPE,
            True,
            "Application-level ping (WS-Kit); answered __heartbeat_ack.",
            envelope(HEARTBEAT_TYPE, meta={"type": "object"}, payload=None),
            replies=(HEARTBEAT_ACK_TYPE,),
        ),
        Frame(
            HEARTBEAT_ACK_TYPE,
            False,
            "The answer to __heartbeat: meta.ts is the server's clock (ms).",
            envelope(HEARTBEAT_ACK_TYPE, meta=_object({"ts": {"type": "integer"}}, ["ts"]), payload=None),
        ),
        Frame(
            ERROR_TYPE,
            False,
            "A failure answering a message without correlationId (or an unprompted one, such as a lost history).",
            envelope(ERROR_TYPE, meta={"$ref": _ref(OUTBOUND_META)}, payload=error, payload_required=True),
        ),
        Frame(
            RPC_ERROR_TYPE,
            False,
            "A failure answering a message that carried a correlationId: the terminal answer of a request.",
            envelope(RPC_ERROR_TYPE, meta=reply, payload=error, meta_required=True, payload_required=True),
            correlated=True,
        ),
        Frame(
            SHUTDOWN_TYPE,
            False,
            "A graceful shutdown began: reconnect after retryAfterMs.",
            envelope(
                SHUTDOWN_TYPE,
                meta={"type": "object"},
                payload=_object({"reason": _STRING, "retryAfterMs": {"type": "integer", "minimum": 0}}, ["reason"]),
                payload_required=True,
            ),
        ),
        _subscription(
            SUBSCRIBE_TYPE,
            "The client joins a topic the router allows, optionally from its last position (offset and epoch).",
            _object(
                {"topic": topic, "offset": {"type": "integer", "minimum": 0}, "epoch": epoch},
                ["topic"],
                dependencies={"offset": ["epoch"], "epoch": ["offset"]},
            ),
            answer=SUBSCRIBED_TYPE,
        ),
        _subscription(
            SUBSCRIBED_TYPE,
            "Confirms $ws:subscribe with the position the client is now at (null without history).",
            _object(
                {
                    "topic": _STRING,
                    "offset": {"type": ["integer", "null"], "minimum": 0},
                    "epoch": {"type": ["string", "null"]},
                },
                ["topic", "offset", "epoch"],
            ),
        ),
        _subscription(
            UNSUBSCRIBE_TYPE,
            "The client leaves a topic (confirmed also when it was not subscribed).",
            _object({"topic": topic}, ["topic"]),
            answer=UNSUBSCRIBED_TYPE,
        ),
        _subscription(UNSUBSCRIBED_TYPE, "Confirms $ws:unsubscribe.", _object({"topic": _STRING}, ["topic"])),
    ]
    if rpcs:
        frames += [
            Frame(
                PROGRESS_TYPE,
                False,
                "A non-terminal answer of a request, zero or more before its reply; the payload is the handler's.",
                envelope(PROGRESS_TYPE, meta=reply, payload={}, meta_required=True),
                correlated=True,
            ),
            Frame(
                CANCEL_TYPE,
                True,
                "Cancels the request with this correlationId: its handler stops and it is answered CANCELLED.",
                envelope(CANCEL_TYPE, meta=inbound_meta({}, correlated=True), payload=None, meta_required=True),
                correlated=True,
            ),
        ]
    if presence:
        frames.append(
            Frame(
                PRESENCE_TYPE,
                False,
                "A member joined or left a topic that announces presence, delivered as a publication to it.",
                envelope(
                    PRESENCE_TYPE,
                    meta={"$ref": _ref(OUTBOUND_META)},
                    payload=_object(
                        {
                            "topic": _STRING,
                            "event": {"type": "string", "enum": ["join", "leave"]},
                            "clientId": _STRING,
                            "userId": {"type": ["string", "null"]},
                            "data": {"type": "object"},
                        },
                        ["topic", "event", "clientId", "userId", "data"],
                    ),
                    payload_required=True,
                ),
            )
        )
    return frames


def _subscription(type_name: str, summary: str, payload: dict[str, Any], *, answer: str | None = None) -> Frame:
    """A client subscription frame: a request when it has an ``answer`` (refusals are
    ``RPC_ERROR``), else that answer; both carry ``meta.correlationId`` and a payload."""
    meta = inbound_meta({}, correlated=True) if answer is not None else {"$ref": _ref(REPLY_META)}
    return Frame(
        type_name,
        answer is not None,
        summary,
        envelope(type_name, meta=meta, payload=payload, meta_required=True, payload_required=True),
        correlated=True,
        replies=(answer, RPC_ERROR_TYPE) if answer is not None else (),
    )
