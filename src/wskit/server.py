"""``serve()``: the standalone server, and :class:`Server` for embedding and tests.

``serve(router, ...)`` blocks until SIGINT/SIGTERM; ``await serve_async(router, ...)`` runs
until cancelled; ``async with Server(router, port=0) as server`` starts on a free port
(``server.port``) and stops on exit. All take the same options, each of which also has an
environment variable (:mod:`wskit.config`); the keyword wins.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from wskit.config import Settings, load_settings
from wskit.connection import QueueLimits
from wskit.errors import CloseCode
from wskit.pubsub.broker import Broker
from wskit.router import Router
from wskit.transports.aiohttp_server import Authenticate, build_app

__all__ = ["Server", "serve", "serve_async"]

log = logging.getLogger("wskit.server")


class Server:
    """A running (or ready to run) standalone server for ``router``.

    Options: ``host``, ``port`` (0: a free port), ``authenticate``, ``path`` (accept
    upgrades only there; default: any path no HTTP route takes), ``max_payload_bytes``,
    ``ping_interval``, ``broker``, ``queue_limits``, ``static_files`` (URL path -> file),
    ``http_routes`` (URL path -> aiohttp handler), ``log_level``.
    """

    def __init__(
        self,
        router: Router[Any],
        *,
        host: str | None = None,
        port: int | None = None,
        authenticate: Authenticate | None = None,
        path: str | None = None,
        max_payload_bytes: int | None = None,
        ping_interval: float | None = None,
        log_level: str | None = None,
        redis_url: str | None = None,
        broker: Broker | None = None,
        reuse_port: bool = False,
        queue_limits: QueueLimits | None = None,
        static_files: Mapping[str, str | Path] | None = None,
        http_routes: Mapping[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.router = router
        self.settings: Settings = load_settings(
            {
                "host": host,
                "port": port,
                "max_payload_bytes": max_payload_bytes,
                "ping_interval": ping_interval,
                "log_level": log_level,
                "redis_url": redis_url,
            },
            env,
        )
        self.broker = broker if broker is not None else _broker_from(self.settings)
        self.reuse_port = reuse_port
        self._sockets: set[web.WebSocketResponse] = set()
        self._app = build_app(
            router,
            authenticate=authenticate,
            path=path,
            max_payload_bytes=self.settings.max_payload_bytes,
            ping_interval=self.settings.ping_interval or None,
            queue_limits=queue_limits or QueueLimits(),
            static_files=static_files or {},
            http_routes=http_routes or {},
            connections=self._sockets,
        )
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when started with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def url(self) -> str:
        """``ws://host:port/`` of the running server."""
        host = self.settings.host
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}/"

    @property
    def connection_count(self) -> int:
        return len(self._sockets)

    async def start(self) -> None:
        """Bind and start accepting (the router is compiled here, so mistakes fail now)."""
        logging.getLogger("wskit").setLevel(self.settings.log_level)
        _ = self.router.dispatcher
        hub = self.router.hub
        if self.broker is not None:
            await hub.set_broker(self.broker)
        await hub.start()
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await self._runner.setup()
        sock = _bind(self.settings.host, self.settings.port, reuse_port=self.reuse_port)
        site = web.SockSite(self._runner, sock)
        await site.start()
        self._port = sock.getsockname()[1]
        log.info("wskit listening on %s", self.url)

    async def stop(self, *, code: int = CloseCode.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every connection with ``code`` and stop listening."""
        if self._runner is None:
            return
        closes = [ws.close(code=code, message=reason.encode()) for ws in list(self._sockets)]
        for outcome in await asyncio.gather(*closes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.debug("closing a socket failed during shutdown: %r", outcome)
        await self._runner.cleanup()
        self._runner = None
        await self.router.hub.close()
        log.info("wskit stopped")

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _broker_from(settings: Settings) -> Broker | None:
    if not settings.redis_url:
        return None
    from wskit.pubsub import RedisBroker

    broker: Broker = RedisBroker(settings.redis_url)
    return broker


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror} (set PORT or port=)") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve_async(router: Router[Any], **options: Any) -> None:
    """Run a :class:`Server` until this coroutine is cancelled."""
    server = Server(router, **options)
    await server.start()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def _install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def serve(router: Router[Any], *, workers: int | None = None, **options: Any) -> None:
    """Serve ``router`` until SIGINT or SIGTERM (uvloop when installed: ``wskit[fast]``).

    ``workers`` (env ``WORKERS``) > 1 starts that many processes sharing the port through
    ``SO_REUSEPORT``; they need a shared broker (``REDIS_URL`` or ``broker=``) so that a
    publish on one reaches subscribers on the others.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    count = load_settings({"workers": workers}).workers
    if count > 1:
        from wskit.workers import run_workers

        run_workers(router, count, options, _serve_one)
        return
    _serve_one(router, options)


def _serve_one(router: Router[Any], options: Mapping[str, Any], *, reuse_port: bool = False) -> None:
    _install_uvloop()

    async def main() -> None:
        server = Server(router, reuse_port=reuse_port, **options)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(main())
