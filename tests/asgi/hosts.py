"""Real ASGI hosts for the tests, in this process and event loop, on 127.0.0.1 port 0.

``async with running(app, "uvicorn-wsproto") as host:`` serves ``app`` (lifespan included)
until the block ends, then stops the host as it stops on a signal (lifespan shutdown last).
Hosts: uvicorn with each WebSocket implementation it has, and hypercorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
import uvicorn.config
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

# uvicorn deprecates its "websockets" implementation, which imports websockets' deprecated
# legacy API (each warns once, at import): tested all the same, so imported here where those
# warnings are no failure
with warnings.catch_warnings():
    warnings.simplefilter("ignore", uvicorn.config.UvicornDeprecationWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    with contextlib.suppress(ImportError):
        import uvicorn.protocols.websockets.websockets_impl

#: uvicorn's WebSocket implementations this uvicorn has (websockets-sansio since 0.35)
UVICORN_WS = [ws for ws in ("websockets", "websockets-sansio", "wsproto") if ws in uvicorn.config.WS_PROTOCOLS]
#: every host a test can name
HOSTS = [f"uvicorn-{ws}" for ws in UVICORN_WS] + ["hypercorn"]

#: Longest wait for a host to start or stop (seconds).
STARTUP_S = 5.0


@dataclass
class Host:
    """A running host: where it listens."""

    name: str
    port: int

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def running(app: Any, host: str, *, root_path: str = "", **options: Any) -> AsyncIterator[Host]:
    """Serve ``app`` under ``host`` (a name of :data:`HOSTS`) until the block ends."""
    sock = _listen()
    port = sock.getsockname()[1]
    try:
        if host.startswith("uvicorn-"):
            async with _uvicorn(app, sock, host.removeprefix("uvicorn-"), root_path, **options):
                yield Host(host, port)
        elif host == "hypercorn":
            async with _hypercorn(app, sock, root_path, **options):
                yield Host(host, port)
        else:
            raise ValueError(f"unknown host {host!r}")
    finally:
        with contextlib.suppress(OSError):  # hypercorn closes the socket it was handed
            sock.close()


@contextlib.asynccontextmanager
async def _uvicorn(app: Any, sock: socket.socket, ws: str, root_path: str, **options: Any) -> AsyncIterator[None]:
    if ws == "websockets":
        # built on websockets' deprecated legacy server, which warns at every connection: the
        # filter lasts as long as the test's own warning filters (pytest restores them after)
        warnings.filterwarnings("ignore", "remove second argument of ws_handler", DeprecationWarning)
    config = uvicorn.Config(
        app, ws=ws, lifespan="on", log_level="warning", root_path=root_path, timeout_graceful_shutdown=2, **options
    )
    server = uvicorn.Server(config)
    # the steps of Server.serve() without its signal handlers and its 0.1 s polling loop
    config.load()
    server.lifespan = config.lifespan_class(config)
    async with asyncio.timeout(STARTUP_S):
        await server.startup(sockets=[sock])
    assert server.started, "uvicorn did not start"
    try:
        yield
    finally:
        async with asyncio.timeout(STARTUP_S):
            await server.shutdown(sockets=[sock])


@contextlib.asynccontextmanager
async def _hypercorn(app: Any, sock: socket.socket, root_path: str, **options: Any) -> AsyncIterator[None]:
    config = HypercornConfig()
    config.bind = [f"fd://{sock.fileno()}"]
    config.root_path = root_path
    config.graceful_timeout = options.pop("graceful_timeout", 1.0)
    config.loglevel = "WARNING"
    config.accesslog = None
    for name, value in options.items():
        setattr(config, name, value)
    stop = asyncio.Event()
    started = asyncio.Event()
    lifespan_started = _on_lifespan_startup(app, started)
    task = asyncio.ensure_future(hypercorn_serve(lifespan_started, config, shutdown_trigger=stop.wait, mode="asgi"))
    try:
        async with asyncio.timeout(STARTUP_S):
            done = asyncio.ensure_future(started.wait())
            await asyncio.wait([task, done], return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                done.cancel()
                task.result()
                raise AssertionError("hypercorn stopped at startup")
        yield
    finally:
        stop.set()
        async with asyncio.timeout(STARTUP_S + config.graceful_timeout):
            await task


def _on_lifespan_startup(app: Any, started: asyncio.Event) -> Any:
    """``app``, telling ``started`` when it has answered ``lifespan.startup`` (hypercorn has no
    hook of its own for that)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_and_tell(message: Any) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                # the socket listens already: connections wait in its backlog until hypercorn accepts
                started.set()

        await app(scope, receive, send_and_tell)

    return wrapped


logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
