"""What the picows host takes from picows (and asyncio) beyond their documented API still works.

``wskit.transports.picows_internals`` is the only module that touches it; each test here
checks one use against the installed picows and Python, so an upgrade that changes
``WSProtocol``'s arguments or its buffered-protocol feeding fails here, by name, instead of
every picows connection failing at its upgrade.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
from typing import Any

from picows import WSFrame, WSListener, WSTransport, WSUpgradeResponse

from wskit.transports.picows_internals import enter_task, hand_over, leave_task, ws_protocol

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _Recorder(WSListener):
    def __init__(self) -> None:
        self.connected: WSTransport | None = None
        self.frames: list[tuple[int, bytes]] = []
        self.arrived = asyncio.Event()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.connected = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.frames.append((int(frame.msg_type), frame.get_payload_as_bytes()))
        self.arrived.set()


class _Idle(asyncio.Protocol):
    """Stands for the host's front protocol, which owns the transport before the hand-over."""


def _masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes((0x81, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_ws_protocol_takes_the_positional_arguments_given() -> None:
    """``WSProtocol(...)`` with the arguments ``ws_create_server`` passes (picows 2.3): built,
    and a buffered protocol (what asyncio feeds through get_buffer/buffer_updated)."""

    async def build() -> Any:
        return ws_protocol(None, 1024)  # type: ignore[arg-type]

    protocol = asyncio.run(build())
    assert isinstance(protocol, asyncio.BufferedProtocol)
    assert callable(protocol.get_buffer) and callable(protocol.buffer_updated)


async def test_hand_over_answers_the_decided_101_and_parses_the_tail() -> None:
    """A connection handed to picows mid-stream: picows answers the 101 given (our headers,
    its accept key for the client's key), calls on_ws_connected, and parses the bytes that
    came after the request as frames."""
    loop = asyncio.get_running_loop()
    listening = socket.create_server(("127.0.0.1", 0))
    client_sock = socket.create_connection(listening.getsockname())
    server_sock, _ = listening.accept()
    listening.close()
    client_sock.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(_Idle, server_sock)
    key = base64.b64encode(os.urandom(16)).decode()
    listener = _Recorder()
    response = WSUpgradeResponse.create_101_response({"x-client-id": "abc"})
    hand_over(transport, listener, response, key, _masked_text(b"hi"), 1024)  # type: ignore[arg-type]
    try:
        assert listener.connected is not None
        assert listener.frames == [(1, b"hi")]
        async with asyncio.timeout(2):
            head = b""
            while b"\r\n\r\n" not in head:
                head += await loop.sock_recv(client_sock, 4096)
        text = head.decode("latin-1")
        assert text.startswith("HTTP/1.1 101 ")
        assert "x-client-id: abc" in text
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        assert f"Sec-WebSocket-Accept: {accept}" in text
        # and frames after the hand-over reach the listener through asyncio's buffered reads
        listener.arrived.clear()
        await loop.sock_sendall(client_sock, _masked_text(b"again"))
        async with asyncio.timeout(2):
            await listener.arrived.wait()
        assert listener.frames[1] == (1, b"again")
    finally:
        transport.close()
        client_sock.close()
        await asyncio.sleep(0.01)  # the transport's connection_lost runs


async def test_enter_task_makes_a_suspended_task_current_in_a_callback() -> None:
    """asyncio's ``_enter_task``/``_leave_task``: from a loop callback, a suspended task is the
    current one between the two calls, and none is after."""
    loop = asyncio.get_running_loop()
    parked = loop.create_future()
    task = loop.create_task(asyncio.wait_for(parked, 5))
    await asyncio.sleep(0)
    seen: list[object] = []

    def callback() -> None:
        enter_task(loop, task)
        try:
            seen.append(asyncio.current_task())
        finally:
            leave_task(loop, task)
        seen.append(asyncio.current_task())
        parked.set_result(None)

    loop.call_soon(callback)
    await task
    assert seen == [task, None]
