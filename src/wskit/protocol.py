"""The wire envelope: reserved names and frame encoding (PROTOCOL.md, "Frames and envelope").

Frames are built by concatenating pre-encoded pieces, so a message sent to many sockets is
serialised once and the hot path never re-encodes the envelope around a payload.
"""

from __future__ import annotations

import json
import re
import time
from enum import Enum
from typing import Any, Final, NamedTuple

__all__ = [
    "CANCEL_TYPE",
    "ERROR_TYPE",
    "HEARTBEAT_ACK_TYPE",
    "HEARTBEAT_TYPE",
    "INBOUND_META_KEYS",
    "PRESENCE_TYPE",
    "PROGRESS_TYPE",
    "RPC_ERROR_TYPE",
    "SERVER_META_KEYS",
    "SHUTDOWN_TYPE",
    "SUBSCRIBED_TYPE",
    "SUBSCRIBE_TYPE",
    "UNSUBSCRIBED_TYPE",
    "UNSUBSCRIBE_TYPE",
    "Position",
    "Step",
    "dumps",
    "frame",
    "heartbeat_ack",
    "is_reserved_type",
    "now_ms",
    "step",
    "type_prefix",
    "valid_type_name",
]

HEARTBEAT_TYPE: Final = "__heartbeat"
HEARTBEAT_ACK_TYPE: Final = "__heartbeat_ack"
PROGRESS_TYPE: Final = "$ws:rpc-progress"
CANCEL_TYPE: Final = "$ws:rpc-cancel"
#: join/leave announcements on topics that opted in (``router.enable_presence_events``)
PRESENCE_TYPE: Final = "$ws:presence"
#: the notice of a graceful shutdown (PROTOCOL.md "Shutdown"): both ends name it from here
SHUTDOWN_TYPE: Final = "SERVER_SHUTDOWN"
#: client subscriptions (docs/protocol.md): the client's request and the server's confirmation
SUBSCRIBE_TYPE: Final = "$ws:subscribe"
SUBSCRIBED_TYPE: Final = "$ws:subscribed"
UNSUBSCRIBE_TYPE: Final = "$ws:unsubscribe"
UNSUBSCRIBED_TYPE: Final = "$ws:unsubscribed"
ERROR_TYPE: Final = "ERROR"
RPC_ERROR_TYPE: Final = "RPC_ERROR"

#: Keys a client may put in ``meta`` for any message (schemas may declare more). The W3C
#: Trace Context pair is accepted whether or not the server traces (docs/tracing.md), so a
#: client need not know how the server is configured.
INBOUND_META_KEYS: Final = frozenset({"timestamp", "correlationId", "timeoutMs", "traceparent", "tracestate"})
#: Keys only the server sets; a client sending them is refused (strict meta).
SERVER_META_KEYS: Final = frozenset({"clientId", "receivedAt"})

_RESERVED_PREFIXES: Final = ("__", "$")
_TYPE_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")


def is_reserved_type(name: str) -> bool:
    """Types starting with ``__`` or ``$`` belong to the framework."""
    return name.startswith(_RESERVED_PREFIXES)


def valid_type_name(name: str) -> bool:
    """Whether ``name`` may be declared as an application message type."""
    return bool(_TYPE_NAME.fullmatch(name)) and not is_reserved_type(name)


def dumps(value: Any) -> bytes:
    """Compact JSON for the cold paths (errors, meta); payloads go through the schema backend.

    A lone surrogate (which a client can smuggle into a type name as ``\\udc00``) cannot be
    UTF-8: then every non-ASCII character is written as an escape instead.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode()


def type_prefix(type_name: str) -> bytes:
    """``{"type":"X"`` pre-encoded once per message type."""
    return b'{"type":' + dumps(type_name)


def frame(prefix: bytes, meta: bytes | None, payload: bytes | None) -> bytes:
    """Assemble an envelope from pre-encoded parts, keys in WS-Kit's order.

    ``meta=None`` leaves the key out (pub/sub deliveries); ``payload=None`` likewise.
    """
    out = prefix
    if meta is not None:
        out += b',"meta":' + meta
    if payload is not None:
        out += b',"payload":' + payload
    return out + b"}"


def now_ms() -> int:
    """Wall-clock milliseconds, as WS-Kit stamps ``receivedAt`` and heartbeat acks."""
    return time.time_ns() // 1_000_000


_ACK_PREFIX: Final = type_prefix(HEARTBEAT_ACK_TYPE)


def heartbeat_ack() -> bytes:
    """``{"type":"__heartbeat_ack","meta":{"ts":<ms>}}``."""
    return frame(_ACK_PREFIX, b'{"ts":%d}' % now_ms(), None)


# -- history positions (PROTOCOL.md, "Topics") ----------------------------------------------


class Position(NamedTuple):
    """A place in a history topic: the last ``offset`` delivered, in ``epoch``.

    The order is the one clients see (``offset, epoch = await ctx.subscribe(...)``).
    """

    offset: int
    epoch: str


class Step(Enum):
    """What a publication at ``(offset, epoch)`` is to a reader at some :class:`Position`."""

    #: the reader had no position: this one starts it
    FIRST = "first"
    #: the very next offset of the same epoch
    NEXT = "next"
    #: an offset the reader already has (a catch-up and the live stream overlapped)
    DUPLICATE = "duplicate"
    #: offsets of the same epoch were skipped: publications were lost on the way
    GAP = "gap"
    #: the history was reset: offsets start over in a new epoch
    NEW_EPOCH = "new-epoch"


def step(position: Position | None, offset: int, epoch: str) -> Step:
    """How a publication at ``offset``/``epoch`` follows ``position``: the one rule of history
    sequencing, shared by the hub's live deliveries, a subscriber's recovery splice and the
    Redis broker's catch-up."""
    if position is None:
        return Step.FIRST
    if epoch != position.epoch:
        return Step.NEW_EPOCH
    if offset <= position.offset:
        return Step.DUPLICATE
    return Step.NEXT if offset == position.offset + 1 else Step.GAP
