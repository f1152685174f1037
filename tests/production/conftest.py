"""Fixtures for the production-guard tests: a tiny app, a server factory, raw HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import BaseModel

# a fixture shared with the guard tests: one throwaway redis-server per module
from tests.guards.conftest import redis_url  # noqa: F401
from tests.protocol.conftest import skip_host_limits
from tests.support.serving import SERVING, Served, prefix_of, serving

from wskit import Context, Router, Server, message, rpc


class Text(BaseModel):
    text: str


class Slow(BaseModel):
    ms: int


Echo = rpc("ECHO", Text, "ECHO_OK", Text)
Sleep = rpc("SLEEP", Slow, "SLEPT", Slow)
Say = message("SAY", Text)
Heard = message("HEARD", Text)


def build_router(**router_options: Any) -> Router[Any]:
    """ECHO and SLEEP RPCs, and SAY (subscribe to "all", then publish HEARD there)."""
    router: Router[Any] = Router(**router_options)

    @router.rpc(Echo)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.rpc(Sleep)
    async def sleep(ctx: Context[Slow]) -> None:
        await asyncio.sleep(ctx.payload.ms / 1000)
        await ctx.reply(ctx.payload)

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        await ctx.subscribe("all")
        await ctx.publish("all", Heard, ctx.payload)

    return router


ServerFactory = Callable[..., "Awaitable[Served]"]


@pytest.fixture(params=SERVING)
async def make_server(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """Serves a router (the test app by default) with ``serve()``'s keyword options, once per
    way wskit is hosted (:data:`tests.support.serving.SERVING`): each test using it runs
    under serve()'s own server, under uvicorn, under hypercorn and mounted in FastAPI."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**options: Any) -> Served:
            router = options.pop("router", None) or build_router()
            return await stack.enter_async_context(serving(router, request.param, **options))

        yield make


@pytest.fixture(params=["aiohttp", "picows"])
async def make_standalone(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """Serves with ``serve()``'s own server only, once per transport it has (aiohttp,
    picows): for what only a process wskit owns does (TLS, the HTTP parser's slowloris
    guard); an ASGI host does those itself."""
    skip_host_limits(request, request.param)
    servers: list[Server] = []

    async def make(**options: Any) -> Server:
        options.setdefault("port", 0)
        options.setdefault("transport", request.param)
        server = Server(options.pop("router", None) or build_router(), env={}, **options)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


async def http_status(
    target: int | Served,
    path: str = "/",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    *,
    upgrade: bool = True,
) -> tuple[int, str]:
    """One raw HTTP/1.1 request; the status and body of the answer (101 for an upgrade).

    ``target``: a port, or a running server (``path`` is then below its mount). ``headers``
    as a list of pairs may repeat a name (one header line each).
    """
    if isinstance(target, int):
        port = target
    else:
        port, path = target.port, prefix_of(target) + path
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if upgrade:
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    lines += [f"{k}: {v}" for k, v in pairs]
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            body = b""
            if status != 101:
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length) if length else b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return status, body.decode()


@asynccontextmanager
async def ws_client(url: str, **kwargs: Any) -> AsyncIterator[Any]:
    from websockets.asyncio.client import connect

    async with connect(url, open_timeout=5, close_timeout=2, **kwargs) as ws:
        yield ws


async def request(ws: Any, type_: str, payload: dict[str, Any], cid: str = "c1", timeout: float = 5) -> dict[str, Any]:
    await ws.send(json.dumps({"type": type_, "meta": {"correlationId": cid}, "payload": payload}))
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if (msg.get("meta") or {}).get("correlationId") == cid:
                return msg  # type: ignore[no-any-return]


def start_server_process(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` (a server on ``port``) and wait until it accepts connections.

    Its output is piped (read it after it exits; ``reap`` closes it). Raises RuntimeError
    when the port does not open within 15 s.
    """
    import sys

    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # bounded: 15 s
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    reap(proc)
    raise RuntimeError(f"server {args} did not start")


def reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` if it still runs, and close its output pipe."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
