"""Every use wskit makes of asyncio's private attributes, in one place (both standalone hosts
use them; ``tests/unit/test_aiohttp_internals.py`` checks them against the running Python).

- ``_SelectorSocketTransport._read_ready_cb`` (asyncio's selector loop): a bound method of
  the transport itself, a reference cycle that outlives the connection; dropped once the
  transport is closing (:func:`break_transport_cycle`), reached through
  ``_SSLProtocolTransport._ssl_protocol._transport`` under TLS (:func:`socket_transport`).
  uvloop's transports are C objects without it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

__all__ = ["break_transport_cycle", "socket_transport"]


def socket_transport(transport: asyncio.BaseTransport | None) -> asyncio.BaseTransport | None:
    """The transport that owns the socket under ``transport``: itself, or under TLS on the
    stock loop the selector transport under asyncio's ``_SSLProtocolTransport``
    (``_ssl_protocol._transport``, which asyncio drops when the connection is lost: take it
    while the connection is open)."""
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    if ssl_protocol is None:
        return transport
    raw: asyncio.BaseTransport | None = getattr(ssl_protocol, "_transport", None)
    return raw


def break_transport_cycle(transport: asyncio.BaseTransport | None) -> None:
    """Drop the reference cycle asyncio's selector transport keeps to itself.

    ``_SelectorSocketTransport._read_ready_cb`` is a bound method of the transport, set at
    creation and never cleared, so every closed connection's transport (and the socket and
    buffers it holds) waits for the cycle collector; with the GC policy's ``gc.freeze()`` it
    waits for the next unfreeze. It is dropped once the transport is closing (its reader is
    then removed from the selector, so the callback can no longer be called): at once, or,
    when it is not closing yet (a TLS shutdown in progress), at a later look, for at most
    :data:`_TLS_WAIT_S`. ``transport`` is the one :func:`socket_transport` returned.
    """
    if transport is not None and getattr(transport, "_read_ready_cb", None) is not None:
        _break_when_closed(transport, 0.05, time.monotonic() + _TLS_WAIT_S)


#: how long a TLS connection's selector transport is waited for (asyncio's TLS shutdown
#: timeout is 30 s)
_TLS_WAIT_S = 40.0


def _break_when_closed(raw: Any, delay_s: float, give_up: float) -> None:
    if raw.is_closing():
        raw._read_ready_cb = None
    elif time.monotonic() < give_up:
        loop = asyncio.get_running_loop()
        loop.call_later(delay_s, _break_when_closed, raw, min(delay_s * 2, 2.0), give_up)
