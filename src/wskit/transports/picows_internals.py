"""Every use wskit makes of picows beyond its documented server API, in one place.

picows's server (``ws_create_server``) reads the upgrade request itself and asks a
synchronous factory for the listener, while wskit's admission is async (``authenticate``
may await a database, a ban check asks the broker). So the picows host reads and admits the
request with a protocol of its own, and only then hands the TCP connection to picows's
protocol, replaying an upgrade request whose answer is already decided. That takes two
things picows does not document; ``tests/unit/test_picows_internals.py`` checks both
against the installed version and fails loudly when an upgrade changes them (pyproject pins
``picows>=2.3,<3``):

- ``WSProtocol(...)``'s positional arguments: what ``ws_create_server`` passes it
  (:func:`ws_protocol`).
- asyncio's ``_enter_task``/``_leave_task``: frames are dispatched from picows's callback
  (no task per message), with the connection's reader task made the current task meanwhile,
  so a handler's first step runs as it would in the reader (``asyncio.timeout``,
  ``current_task()``), and the rest of it, when it has to wait, in that same task
  (:func:`enter_task`, :func:`leave_task`).
- Feeding bytes through ``WSProtocol``'s ``BufferedProtocol`` interface (``get_buffer``,
  ``buffer_updated``) right after ``connection_made``: the replayed request, then the frames
  the client sent while it was being admitted (:func:`hand_over`).
- Emptying the headers of the ``WSUpgradeRequest``/``WSUpgradeResponse`` that picows keeps
  on its transport for the connection's life, once the 101 is written (:func:`slim`).
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import tasks as _tasks
from typing import Any

from multidict import CIMultiDict
from picows import WSListener, WSTransport, WSUpgradeResponse, WSUpgradeResponseWithListener
from picows.picows import WSProtocol  # type: ignore[attr-defined] # not in picows's stubs

__all__ = [
    "QuietLog",
    "enter_task",
    "hand_over",
    "leave_task",
    "release_transport",
    "slim",
    "upgrade_request",
    "ws_protocol",
]

log = logging.getLogger("wskit.picows")


class QuietLog:
    """The logger handed to picows: its per-connection INFO lines ("New connection
    accepted", "Disconnected") dropped, its complaints about peers (a bad frame, an unmasked
    one) at DEBUG, and only exceptions (a bug of ours in a listener callback) as errors.

    Not a ``logging.Logger`` on purpose: picows makes a child logger per connection of one.
    """

    __slots__ = ()

    def isEnabledFor(self, level: int) -> bool:
        return False

    def log(self, level: int, msg: str, *args: Any) -> None:
        pass

    def info(self, msg: str, *args: Any) -> None:
        pass

    def debug(self, msg: str, *args: Any) -> None:
        pass

    def warning(self, msg: str, *args: Any) -> None:
        log.debug("picows: " + msg, *args)

    def error(self, msg: str, *args: Any) -> None:
        log.debug("picows: " + msg, *args)

    def exception(self, msg: str, *args: Any) -> None:
        log.error("picows: " + msg, *args, exc_info=True)


_QUIET = QuietLog()


def ws_protocol(answer: WSUpgradeResponseWithListener, max_frame_size: int) -> asyncio.BaseProtocol:
    """picows's server protocol for one connection whose upgrade is decided: it answers
    ``answer.response`` and calls ``answer.listener`` (no handshake timer, no auto ping or
    pong: the host's own)."""
    protocol: asyncio.BaseProtocol = WSProtocol(
        None,  # host+port (client side only)
        None,  # ws_path (client side only)
        False,  # is_client_side
        lambda _request: answer,  # the listener factory: already decided
        _QUIET,  # logger
        True,  # disconnect_on_exception
        None,  # websocket_handshake_timeout: the host's (HANDSHAKE_TIMEOUT_MS) ran already
        False,  # enable_auto_ping: the runtime's Watchdog sweep pings
        20.0,  # auto_ping_idle_timeout (unused)
        20.0,  # auto_ping_reply_timeout (unused)
        1,  # auto_ping_strategy: PING_WHEN_IDLE (unused)
        False,  # enable_auto_pong: the listener answers pings (and counts them as heard)
        max_frame_size,
        None,  # extra_headers (client side only)
        2048,  # read_buffer_init_size: grown for bigger frames (16 KiB idle was half of our memory)
    )
    return protocol


def upgrade_request(key: str) -> bytes:
    """The upgrade request replayed to picows: only what its checks read (the real one was
    checked and admitted already), so picows keeps a small request per connection."""
    return (
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key.encode("ascii") + b"\r\n\r\n"
    )


def hand_over(
    transport: asyncio.Transport,
    listener: WSListener,
    response: WSUpgradeResponse,
    key: str,
    tail: bytes,
    max_frame_size: int,
) -> None:
    """Give ``transport`` to picows: it answers ``response`` (a 101, with the accept key it
    computes from ``key``), calls ``listener.on_ws_connected``, then parses ``tail`` (bytes
    the client sent after its request) as frames."""
    protocol = ws_protocol(WSUpgradeResponseWithListener(response, listener), max_frame_size)
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    data = memoryview(upgrade_request(key) + tail)
    while data:
        buffer = protocol.get_buffer(-1)  # type: ignore[attr-defined]
        size = min(len(buffer), len(data))
        buffer[:size] = data[:size]
        protocol.buffer_updated(size)  # type: ignore[attr-defined]
        data = data[size:]


def enter_task(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    """Make ``task`` (suspended) the current task of ``loop`` until :func:`leave_task`;
    raises RuntimeError when another task is current (call from a loop callback only)."""
    _tasks._enter_task(loop, task)


def leave_task(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    _tasks._leave_task(loop, task)


class _Spent(asyncio.BufferedProtocol):
    """Stands in for picows's protocol under a closed TLS transport (see :func:`release_transport`)."""

    def get_buffer(self, sizehint: int) -> bytearray:
        return bytearray(0)

    def buffer_updated(self, nbytes: int) -> None:
        pass


_SPENT = _Spent()


def release_transport(transport: asyncio.BaseTransport) -> None:
    """Let a disconnected connection's objects go by reference counting.

    The TLS protocol (asyncio's and uvloop's) keeps bound methods of a buffered app protocol
    (``get_buffer``, ``buffer_updated``) after the connection is lost, and picows's protocol
    leads back to it through its transport: a cycle holding the whole connection. Handing the
    TLS transport a spent protocol (``set_protocol``, public API) drops those methods.
    """
    if transport.get_extra_info("sslcontext") is not None:
        transport.set_protocol(_SPENT)


#: one empty map shared by every slimmed request and response (nothing writes to them)
_NO_HEADERS: CIMultiDict[str] = CIMultiDict()


def slim(transport: WSTransport) -> None:
    """Drop the header maps of the upgrade request and response picows keeps on ``transport``
    (read-only attributes holding plain objects): the 101 is written by now, and wskit
    reads neither again (admission read the real request). About 1 KB of every idle
    connection."""
    for kept in (transport.request, transport.response):
        if kept is not None:
            kept.headers = _NO_HEADERS
