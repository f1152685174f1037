"""RFC 6455 rules the aiohttp host enforced loosely, over raw sockets (every byte written here).

The attack (issue 13): an unmasked client frame was accepted; close code 5000 was echoed
and a close carrying 1006 answered 1000; a text frame of invalid UTF-8 got an ERROR frame
instead of close 1007; upgrades with ``Sec-WebSocket-Version: 8``, over HTTP/1.0 or with
POST were answered 101.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from typing import Any

import pytest

from wskit import Server

WAIT = 5.0
ECHO = json.dumps({"type": "ECHO", "meta": {"correlationId": "c"}, "payload": {"text": "hi"}}).encode()


def _frame(opcode: int, payload: bytes, *, masked: bool = True) -> bytes:
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, (0x80 if masked else 0) | size))
    else:
        head = bytes((0x80 | opcode, (0x80 if masked else 0) | 126)) + struct.pack("!H", size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _request(port: int, *, method: str = "GET", http: str = "HTTP/1.1", version: str | None = "13") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"{method} / {http}",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
    ]
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Raw:
    """One raw connection: the upgrade's answer, then frames as the server sends them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: str) -> None:
        self.reader, self.writer, self.head = reader, writer, head

    @property
    def status(self) -> int:
        return int(self.head.split(" ", 2)[1])

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    @classmethod
    async def open(cls, port: int, request: bytes | None = None, after: bytes = b"") -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((request or _request(port)) + after)
        async with asyncio.timeout(WAIT):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        return cls(reader, writer, head)

    async def frame(self) -> tuple[int, bytes]:
        async with asyncio.timeout(WAIT):
            first, second = await self.reader.readexactly(2)
            assert not second & 0x80, "server frames are never masked"
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            return first & 0x0F, await self.reader.readexactly(size)

    async def close_code(self) -> int:
        """The code of the server's close frame (data frames before it are skipped)."""
        while True:
            opcode, data = await self.frame()
            if opcode == 0x8:
                code: int = struct.unpack("!H", data[:2])[0]
                return code

    async def call(self, data: bytes, opcode: int = 0x1) -> dict[str, Any]:
        self.writer.write(_frame(opcode, data))
        _opcode, answer = await self.frame()
        result: dict[str, Any] = json.loads(answer)
        return result

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def server(make_standalone: Any) -> Server:
    built: Server = await make_standalone(ping_interval=0)
    return built


async def test_unmasked_client_frame_closes_1002(server: Server) -> None:
    """RFC 6455 5.1: a client frame without the mask bit fails the connection with 1002, and is
    not handled; masked frames before it are."""
    ws = await Raw.open(server.port)
    assert (await ws.call(ECHO))["type"] == "ECHO_OK"
    ws.writer.write(_frame(0x1, ECHO, masked=False))
    assert await ws.close_code() == 1002
    ws.close()


async def test_unmasked_frames_are_caught_in_any_chunking(server: Server) -> None:
    """A masked frame and an unmasked one in one write, split headers, large frames: the masked
    ones are answered, the unmasked one closes 1002."""
    ws = await Raw.open(server.port)
    big = json.dumps({"type": "ECHO", "meta": {"correlationId": "b"}, "payload": {"text": "x" * 1000}}).encode()
    data = _frame(0x1, big) + _frame(0x1, ECHO) + _frame(0x1, ECHO, masked=False) + _frame(0x1, ECHO)
    for start in range(0, len(data), 7):  # headers split across reads
        ws.writer.write(data[start : start + 7])
        await ws.writer.drain()
    answers = 0
    while True:
        opcode, payload = await ws.frame()
        if opcode == 0x8:
            assert struct.unpack("!H", payload[:2])[0] == 1002
            break
        answers += 1
    assert answers == 2
    ws.close()


async def test_unmasked_frame_sent_before_the_101_is_refused(server: Server) -> None:
    """Frames sent with the upgrade request (before the 101) that are not masked: HTTP 400."""
    ws = await Raw.open(server.port, after=_frame(0x1, ECHO, masked=False))
    assert ws.status == 400
    ws.close()
    ws = await Raw.open(server.port, after=_frame(0x1, ECHO))  # masked ones are handled
    assert ws.status == 101
    _opcode, answer = await ws.frame()
    assert json.loads(answer)["type"] == "ECHO_OK"
    ws.close()


@pytest.mark.parametrize("code", [5000, 1006, 1004, 1005, 1015, 2999, 999, 1016, 65535])
async def test_invalid_close_code_is_answered_1002(server: Server, code: int) -> None:
    """RFC 6455 7.4: a close code outside 1000-1003, 1007-1014 and 3000-4999 is a protocol
    error: the server answers 1002, it does not echo it (nor answer 1000)."""
    ws = await Raw.open(server.port)
    ws.writer.write(_frame(0x8, struct.pack("!H", code) + b"bye"))
    assert await ws.close_code() == 1002
    ws.close()


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1014, 3000, 4999])
async def test_valid_close_code_is_echoed(server: Server, code: int) -> None:
    """A valid close code is echoed, as before."""
    ws = await Raw.open(server.port)
    ws.writer.write(_frame(0x8, struct.pack("!H", code)))
    assert await ws.close_code() == code
    ws.close()


async def test_close_without_code_is_answered_1000(server: Server) -> None:
    """An empty close frame (no status code) is answered 1000."""
    ws = await Raw.open(server.port)
    ws.writer.write(_frame(0x8, b""))
    assert await ws.close_code() == 1000
    ws.close()


async def test_invalid_utf8_text_frame_closes_1007(server: Server) -> None:
    """RFC 6455 8.1: a text frame that is not UTF-8 fails the connection with 1007 (not an
    ERROR frame); valid non-ASCII text is handled as before."""
    ws = await Raw.open(server.port)
    text = json.dumps(
        {"type": "ECHO", "meta": {"correlationId": "u"}, "payload": {"text": "héllo ✓"}}, ensure_ascii=False
    )
    assert (await ws.call(text.encode()))["payload"]["text"] == "héllo ✓"
    bad = b'{"type":"ECHO","meta":{"correlationId":"x"},"payload":{"text":"\xff\xfe"}}'
    ws.writer.write(_frame(0x1, bad))
    assert await ws.close_code() == 1007
    ws.close()


async def test_invalid_utf8_binary_frame_is_an_error_answer(server: Server) -> None:
    """A binary frame holding JSON that is not UTF-8 is answered ERROR INVALID_ARGUMENT; the
    connection stays usable."""
    ws = await Raw.open(server.port)
    bad = b'{"type":"ECHO","meta":{},"payload":{"text":"\xff\xfe"}}'
    answer = await ws.call(bad, opcode=0x2)
    assert answer["type"] == "ERROR"
    assert answer["payload"]["code"] == "INVALID_ARGUMENT"
    assert (await ws.call(ECHO))["type"] == "ECHO_OK"
    ws.close()


@pytest.mark.parametrize("version", ["8", "7", "12", "14", ""])
async def test_other_websocket_versions_get_426_naming_13(server: Server, version: str) -> None:
    """RFC 6455 4.4: an unsupported Sec-WebSocket-Version is answered 426 with
    Sec-WebSocket-Version: 13 (aiohttp accepted 7 and 8)."""
    ws = await Raw.open(server.port, _request(server.port, version=version))
    assert ws.status == 426
    assert ws.header("Sec-WebSocket-Version") == "13"
    ws.close()


async def test_upgrade_without_version_gets_426(server: Server) -> None:
    """No Sec-WebSocket-Version at all: 426 naming 13."""
    ws = await Raw.open(server.port, _request(server.port, version=None))
    assert ws.status == 426
    assert ws.header("Sec-WebSocket-Version") == "13"
    ws.close()


async def test_upgrade_over_http_1_0_is_refused(server: Server) -> None:
    """RFC 6455 4.1: HTTP/1.1 or later; an HTTP/1.0 upgrade gets 400."""
    ws = await Raw.open(server.port, _request(server.port, http="HTTP/1.0"))
    assert ws.status == 400
    ws.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_upgrade_with_another_method_gets_405(server: Server, method: str) -> None:
    """RFC 6455 4.1: the method must be GET; others get 405 with Allow: GET."""
    ws = await Raw.open(server.port, _request(server.port, method=method))
    assert ws.status == 405
    assert ws.header("Allow") == "GET"
    ws.close()


async def test_valid_upgrade_still_works(server: Server) -> None:
    """GET, HTTP/1.1, version 13, masked frames: 101 and an answer."""
    ws = await Raw.open(server.port)
    assert ws.status == 101
    assert (await ws.call(ECHO))["type"] == "ECHO_OK"
    ws.close()


async def _slow_authenticate(request: Any) -> dict[str, Any]:
    await asyncio.sleep(0.3)  # a database or Redis lookup: the upgrade waits here
    return {"user_id": "u"}


async def test_unmasked_frame_sent_while_the_upgrade_is_admitted_closes_1002(make_standalone: Any) -> None:
    """A frame sent after the upgrade request but while an async authenticate runs (before the
    101) reached aiohttp's parser ahead of the mask check and was served; now it fails the
    connection with 1002 like any unmasked frame."""
    server: Server = await make_standalone(ping_interval=0, authenticate=_slow_authenticate)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(_request(server.port))
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.write(_frame(0x1, ECHO, masked=False))
    async with asyncio.timeout(WAIT):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    ws = Raw(reader, writer, head)
    assert ws.status == 101
    assert await ws.close_code() == 1002
    ws.close()


async def test_a_masked_frame_split_across_the_101_is_served(make_standalone: Any) -> None:
    """Half a masked frame before the 101 and the rest after it: one ECHO_OK (the mask check
    used to start in the middle of the frame and close 1002)."""
    server: Server = await make_standalone(ping_interval=0, authenticate=_slow_authenticate)
    frame = _frame(0x1, ECHO)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(_request(server.port) + frame[:5])
    await writer.drain()
    async with asyncio.timeout(WAIT):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    ws = Raw(reader, writer, head)
    assert ws.status == 101
    writer.write(frame[5:])
    _opcode, answer = await ws.frame()
    assert json.loads(answer)["type"] == "ECHO_OK"
    ws.close()
