"""Closed connections give their memory back, even when they were frozen while open.

The attack (issue 13): waves of 1,000 connections held 1.5 s and closed took a server from
70 to 158 MiB over ten waves, ~10 KB per closed connection, never returned. The GC policy
freezes what survives each second; what aiohttp and asyncio left in reference cycles per
connection was frozen with it and only the ten-minute unfreeze could free it.

Replayed here against a server process with a 50 ms freeze interval, so every connection is
frozen while it is open: waves of connections that each answer one RPC, held, closed. The
server's RSS (``/proc/PID/status``) must not grow by more than 2 KB per closed connection
after a warm-up wave (it grew ~10 KB before), and the objects left frozen must come back to
where they were (before: ~50 more per closed connection).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.production.conftest import reap, start_server_process

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

WAVES = 5
SIZE = 300
HOLD_S = 0.4  # eight freezes at 50 ms

SERVER = r"""
import gc, sys
from pydantic import BaseModel
from wskit import Context, Router, rpc, serve

class Text(BaseModel):
    text: str

class Nothing(BaseModel):
    pass

class Frozen(BaseModel):
    frozen: int

Echo = rpc("ECHO", Text, "ECHO_OK", Text)
Count = rpc("FROZEN", Nothing, "FROZEN_ARE", Frozen)
router = Router()

@router.rpc(Echo)
async def echo(ctx: Context[Text]) -> None:
    await ctx.reply(ctx.payload)

@router.rpc(Count)
async def count(ctx: Context[Nothing]) -> None:
    await ctx.reply(Frozen(frozen=gc.get_freeze_count()))

serve(router, port=int(sys.argv[1]), log_level="WARNING", max_connections=0)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


class Client:
    """A bare RFC 6455 client: enough for one RPC and a clean close."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        """The next frame from the server (pings are answered and skipped)."""
        while True:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            data = await self.reader.readexactly(size)
            if first & 0x0F == 0x9:
                self.writer.write(_masked(0xA, data))
                continue
            return first & 0x0F, data

    async def call(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = {"type": kind, "meta": {"correlationId": "c"}, "payload": payload}
        self.writer.write(_masked(0x1, json.dumps(request).encode()))
        _opcode, data = await self.frame()
        answer: dict[str, Any] = json.loads(data)
        return answer

    async def close(self) -> None:
        self.writer.write(_masked(0x8, struct.pack("!H", 1000)))
        try:
            while (await self.frame())[0] != 0x8:
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.writer.close()
        await self.writer.wait_closed()


async def _wave(port: int) -> None:
    clients = await asyncio.gather(*(Client.open(port) for _ in range(SIZE)))
    for client in clients:
        assert (await client.call("ECHO", {"text": "hi"}))["type"] == "ECHO_OK"
    await asyncio.sleep(HOLD_S)  # bounded hold: the connections get frozen while open
    await asyncio.gather(*(client.close() for client in clients))


async def _settled_rss(pid: int) -> int:
    """The server's RSS once it stops moving (it has finished closing), in KiB."""
    last = _rss_kib(pid)
    for _ in range(20):  # bounded: 4 s
        await asyncio.sleep(0.2)
        now = _rss_kib(pid)
        if abs(now - last) < 32:
            return now
        last = now
    return last


async def _frozen(port: int) -> int:
    client = await Client.open(port)
    answer = await client.call("FROZEN", {})
    await client.close()
    frozen: int = answer["payload"]["frozen"]
    return frozen


async def test_closed_connections_return_their_memory() -> None:
    """Five waves of 300 connections, each frozen while open, then closed: the server's RSS
    grows by under 2 KB per closed connection after the first wave, and frozen objects do
    not pile up (under 5 per closed connection)."""
    port = _free_port()
    proc = start_server_process(["-c", SERVER, str(port)], port, {"GC_FREEZE_INTERVAL_S": "0.05"})
    try:
        async with asyncio.timeout(120):
            await _wave(port)  # warm-up: allocator arenas, caches, the first frozen generation
            rss0, frozen0 = await _settled_rss(proc.pid), await _frozen(port)
            for _ in range(WAVES - 1):
                await _wave(port)
            rss1, frozen1 = await _settled_rss(proc.pid), await _frozen(port)
    finally:
        reap(proc)
    closed = SIZE * (WAVES - 1)
    per_connection = (rss1 - rss0) * 1024 / closed
    assert per_connection < 2048, f"RSS grew {per_connection:.0f} bytes per closed connection ({rss0} -> {rss1} KiB)"
    assert (frozen1 - frozen0) / closed < 5, f"frozen objects {frozen0} -> {frozen1} after {closed} closed connections"
