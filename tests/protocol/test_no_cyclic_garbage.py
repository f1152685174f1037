"""A closed connection is freed by reference counting, not left to the cycle collector.

Anything a closed connection leaves in a reference cycle waits for the collector, and with
the GC policy's ``gc.freeze()`` (wskit.gcpolicy) a cycle frozen while the connection was
open waits for the next unfreeze, ten minutes by default: measured before this test was made
strict, ~50 objects and ~10 KB of memory per closed connection (aiohttp's heartbeat
callback and asyncio's selector transport each point back at themselves).

So: the server runs in this process with the collector off, the clients in another process
(their objects are not ours to count), and every object the collector would free afterwards
is counted, whatever its type: connections closed in every way (close frame, vanished peer,
closed by the server, after pings and RPC hand-offs) must leave none, under the stock
asyncio loop and under uvloop, on both of serve()'s hosts.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, Router, Server, message, rpc

ROUNDS = 5


class Text(BaseModel):
    text: str


Say = message("SAY", Text)
Echo = rpc("ECHO", Text, "ECHO_OK", Text)
Slow = rpc("SLOW", Text, "SLOW_OK", Text)
Bye = message("BYE", Text)


def build() -> Router[Any]:
    router: Router[Any] = Router()

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        await ctx.subscribe("room")
        await ctx.publish("room", Say, ctx.payload)

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.rpc(Slow)
    async def slow(ctx: Context[Text]) -> None:
        await asyncio.sleep(0.01)  # hands reading on to a new task
        await ctx.reply(ctx.payload)

    @router.on(Bye)
    async def bye(ctx: Context[Text]) -> None:
        await ctx.close(4000, "bye")  # closed by the server

    return router


#: the client side, in its own process: per round a clean close after SAY, SLOW, ECHO and a
#: ping; a peer that vanishes without a close frame; a connection the server closes
CLIENT = r"""
import asyncio, json, socket, ssl, sys
from websockets.asyncio.client import connect

async def main(url, port, rounds, cafile):
    tls = ssl.create_default_context(cafile=cafile) if cafile else None
    for _ in range(rounds):
        async with connect(url, ping_interval=None, ssl=tls) as ws:
            await ws.send(json.dumps({"type": "SAY", "payload": {"text": "hi"}}))
            await ws.recv()
            for kind in ("SLOW", "ECHO"):
                await ws.send(json.dumps({"type": kind, "meta": {"correlationId": "c"}, "payload": {"text": "x"}}))
                await ws.recv()
            await (await ws.ping())
        sock = socket.create_connection(("127.0.0.1", port))
        if tls:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # vanishes: RST, no close frame
        async with connect(url, ssl=tls) as ws:
            await ws.send(json.dumps({"type": "BYE", "payload": {"text": "x"}}))
            await ws.wait_closed()
            assert ws.close_code == 4000, ws.close_code

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
"""


@contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cyclic_garbage() -> Counter[str]:
    """Every object that only the cycle collector would free, by type."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def _run_clients(server: Server, rounds: int, cafile: str) -> None:
    # a plain Popen polled from the loop: asyncio's subprocess machinery would be garbage of ours
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled without blocking
        [sys.executable, "-c", CLIENT, server.url, str(server.port), str(rounds), cafile]
    )
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded
        await asyncio.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
    assert proc.wait() == 0, "the client process failed"
    async with asyncio.timeout(5):
        while server.connection_count:  # noqa: ASYNC110 - bounded, nothing to wait on
            await asyncio.sleep(0.02)
    # transports finish closing on the next loop iterations; a TLS connection's socket closes
    # after its TLS shutdown, and its cycle is broken at the first look after that
    await asyncio.sleep(1.5 if server.url.startswith("wss") else 0.2)


async def _scenario(tls: tuple[Path, Path] | None, transport: str) -> Counter[str]:
    router = build()
    options: dict[str, Any] = {}
    if tls is not None:
        options = {"tls_cert_file": str(tls[0]), "tls_key_file": str(tls[1])}
    cafile = str(tls[0]) if tls is not None else ""
    # pings every 50 ms: the ping sweep and its pongs run while the connections live
    options.update(port=0, env={}, ping_interval=0.05, gc_freeze_interval_s=0, transport=transport)
    async with Server(router, **options) as server:
        await _run_clients(server, 1, cafile)  # warm-up: one-off objects (caches, the route table)
        with collector_off():
            await _run_clients(server, ROUNDS, cafile)
            return cyclic_garbage()


def _uvloop_run(main: Coroutine[Any, Any, Counter[str]]) -> Counter[str]:
    uvloop = pytest.importorskip("uvloop")
    result: Counter[str] = uvloop.run(main)
    return result


LOOPS: dict[str, Callable[[Coroutine[Any, Any, Counter[str]]], Counter[str]]] = {
    "asyncio": asyncio.run,
    "uvloop": _uvloop_run,
}


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
def test_closed_connections_leave_no_cyclic_garbage(transport: str, loop: str, tls: bool, tmp_path: Path) -> None:
    """Clients that close cleanly, vanish (TCP reset) or are closed by the server leave no object
    of any type for the cycle collector (3 connections a round, 5 rounds), with and without TLS."""
    if tls and shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    left = LOOPS[loop](_scenario(_self_signed(tmp_path) if tls else None, transport))
    assert sum(left.values()) == 0, f"{3 * ROUNDS} closed connections left cyclic garbage: {dict(left)}"
