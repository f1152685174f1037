"""Control bytes inside request header lines: refused, never echoed into the 101.

The first subprotocol a client offers is echoed in the upgrade's answer; a bare LF inside
that header would smuggle a header of the client's choosing (``Set-Cookie``) into our
response. Both of serve()'s transports answer 400 instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

UPGRADE = (
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.mark.parametrize(
    "line",
    [
        b"Sec-WebSocket-Protocol: chat\nSet-Cookie: session=attacker",
        b"Sec-WebSocket-Protocol: chat\rSet-Cookie: session=attacker",
        b"X-Note: bell\x07",
    ],
    ids=["bare-lf", "bare-cr", "control-byte"],
)
async def test_control_bytes_in_a_header_line_are_refused(make_standalone: Any, line: bytes) -> None:
    server = await make_standalone()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(UPGRADE.encode() + line + b"\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"400", head
        assert b"Set-Cookie" not in head and b"attacker" not in head
    finally:
        writer.close()
