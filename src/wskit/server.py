"""``serve()``: the standalone server, and :class:`Server` for embedding and tests.

``serve(router, ...)`` blocks until SIGINT/SIGTERM, then shuts down gracefully;
``await serve_async(router, ...)`` runs until cancelled; ``async with Server(router,
port=0) as server`` starts on a free port (``server.port``) and stops on exit. All take
the same options, each of which also has an environment variable (:mod:`wskit.config`);
the keyword wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from wskit.admission import Admission, Authenticate
from wskit.config import ConfigError, Settings, explicit_settings, load_settings
from wskit.connection import OverflowPolicy, QueueLimits
from wskit.dispatch import Dispatcher
from wskit.errors import ErrorCode, WsKitError
from wskit.gcpolicy import GcFreezer
from wskit.lifetime import Watchdog
from wskit.logs import PeerErrorLog, configure_logging
from wskit.protocol import dumps, frame, type_prefix
from wskit.pubsub.broker import Broker
from wskit.router import Middleware, Router
from wskit.transports.aiohttp_server import HandshakeGuard, HttpHandler, Transport, build_app

__all__ = ["SHUTDOWN_TYPE", "Server", "serve", "serve_async"]

log = logging.getLogger("wskit.server")

#: The notice every client gets when the server begins a graceful shutdown.
SHUTDOWN_TYPE = "SERVER_SHUTDOWN"
_SHUTDOWN_PREFIX = type_prefix(SHUTDOWN_TYPE)


class Server:
    """A running (or ready to run) standalone server for ``router``.

    Besides every setting of :data:`wskit.config.OPTIONS` as a keyword (``host``,
    ``port``, ``path``, ``max_payload_bytes``, ``allowed_origins``, ``idle_timeout_ms``...),
    it takes: ``authenticate`` (``request -> data | None``), ``broker``, ``queue_limits``
    (every connection's outbound bound and policy, over the settings and the router's
    ``send_queue``), ``static_files`` (URL path -> file), ``http_routes`` (URL path ->
    aiohttp handler), ``guards`` (middleware run before the application's), ``env`` (instead
    of ``os.environ``), ``require`` (settings that must be set, e.g. ``("jwt_secret",)``:
    missing ones fail here).

    Raises :class:`~wskit.config.ConfigError` for a bad setting here, and from :meth:`start`
    when ``require_auth`` guards every route but nothing can authenticate a connection.
    """

    def __init__(
        self,
        router: Router[Any],
        *,
        authenticate: Authenticate | None = None,
        broker: Broker | None = None,
        queue_limits: QueueLimits | None = None,
        static_files: Mapping[str, str | Path] | None = None,
        http_routes: Mapping[str, HttpHandler] | None = None,
        guards: list[Middleware] | None = None,
        env: Mapping[str, str] | None = None,
        reuse_port: bool = False,
        require: tuple[str, ...] = (),
        **settings: Any,
    ) -> None:
        self.router = router
        self.settings: Settings = load_settings(settings, env, require=require)
        s = self.settings
        self.broker = broker if broker is not None else _broker_from(s)
        self.reuse_port = reuse_port
        self._authenticate = authenticate
        self._guards = list(guards or [])
        self._limits = queue_limits or _queue_limits(router, s, explicit_settings(settings, env))
        self._static = {route: Path(file) for route, file in (static_files or {}).items()}
        self._http = dict(http_routes or {})
        self.admission = Admission(
            authenticate=authenticate,
            allowed_origins=s.allowed_origins,
            max_connections=s.max_connections,
            max_connections_per_ip=s.max_connections_per_ip,
            trusted_proxies=s.trusted_proxies,
            broker=lambda: router.hub.broker,
        )
        self.watchdog = Watchdog(idle_ms=s.idle_timeout_ms, auth_ms=s.auth_timeout_ms, token_leeway_s=s.jwt_leeway_s)
        if authenticate is not None and s.jwt_secret:
            # the application's authenticate decides who connects; wskit does not also
            # verify tokens behind its back, and says so rather than ignore the secret quietly
            log.warning(
                "JWT_SECRET is set but authenticate= was given, which replaces wskit's JWT check: tokens "
                "are verified only if your authenticate does it (wskit.guards.jwt_authenticate), and no AUTH "
                "route is added; unset JWT_SECRET to silence this"
            )
        self._rate_guards: list[Middleware] = []
        #: this server holds a share of the process's GC freezing timer (see wskit.gcpolicy)
        self._gc_frozen = False
        self._stopping: asyncio.Future[None] | None = None
        self.transport: Transport | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._port: int | None = None

    # -- facts -----------------------------------------------------------------------------

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
        """``ws://host:port/`` (``wss://`` with TLS) of the running server."""
        host = self.settings.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self.settings.tls_cert_file else "ws"
        return f"{scheme}://{host}:{self.port}/"

    @property
    def connection_count(self) -> int:
        return len(self.transport.connections) if self.transport is not None else 0

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting (the router is compiled here, so mistakes fail now)."""
        s = self.settings
        logging.getLogger("wskit").setLevel(s.log_level)
        # JWT may add the AUTH route, so it comes before the router is compiled
        self.admission.authenticate = self._authenticate or _configured_authenticate(self.router, s)
        _check_auth_reachable(self.router, self._guards, s, authenticate=self.admission.authenticate)
        self._rate_guards = _configured_guards(self.router, s)
        dispatcher = Dispatcher(self.router, guards=self._guards + self._rate_guards, frame_guards=self._rate_guards)
        dispatcher.retry_after_ms = s.shutdown_retry_after_ms
        hub = self.router.hub
        if self.broker is not None:
            await hub.set_broker(self.broker)
        await hub.start()
        self.transport = Transport(
            router=self.router,
            dispatcher=dispatcher,
            admission=self.admission,
            watchdog=self.watchdog,
            max_payload_bytes=s.max_payload_bytes,
            ping_interval=s.ping_interval or None,
            queue_limits=self._limits,
            path=s.path,
            static_files=self._static,
            http_routes=self._http,
        )
        app = build_app(self.transport)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            # HandshakeGuard covers a connection's first request only; between requests on a
            # keep-alive connection aiohttp's own timer rules (default about an hour), so a
            # client could answer /healthz and then trickle a second request for ever
            keepalive_timeout=_keepalive_s(s),
            # malformed requests and vanished peers: one rate-limited line each, no traceback
            logger=PeerErrorLog(logging.getLogger("wskit.http")),
        )
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        guard = HandshakeGuard(server, s.handshake_timeout_ms / 1000.0)
        self.transport.guard = guard
        sock = _bind(s.host, s.port, reuse_port=self.reuse_port)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(guard, sock=sock, ssl=_tls(s), backlog=1024)
        self._port = sock.getsockname()[1]
        log.info("wskit listening on %s", self.url)
        self._gc_frozen = GcFreezer.acquire(s.gc_freeze_interval_s, s.gc_unfreeze_interval_s)

    async def shutdown(
        self, *, grace_ms: int | None = None, code: int | None = None, reason: str = "server shutting down"
    ) -> None:
        """Stop gracefully: refuse new connections, tell clients, let running work finish.

        Every connection gets a ``SERVER_SHUTDOWN`` notice (``retryAfterMs``: reconnect
        elsewhere); new messages are answered ``UNAVAILABLE``; handlers and RPCs in flight
        get ``grace_ms`` (default ``SHUTDOWN_GRACE_MS``) to finish; then every connection
        closes with ``code`` (default ``SHUTDOWN_CLOSE_CODE``: 1001, or 1012 for a restart)
        and the broker is closed (its last commands awaited, its presence removed).
        """
        if self.transport is None:
            return
        grace = (self.settings.shutdown_grace_ms if grace_ms is None else grace_ms) / 1000.0
        self.admission.closed = True
        if self._listener is not None:
            self._listener.close()
        dispatcher = self.transport.dispatcher
        dispatcher.draining = True
        notice = frame(
            _SHUTDOWN_PREFIX,
            b"{}",
            dumps({"reason": reason, "retryAfterMs": self.settings.shutdown_retry_after_ms}),
        )
        for conn in list(self.transport.connections.values()):
            conn.send_nowait(notice)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while dispatcher.busy() and loop.time() < deadline:  # noqa: ASYNC110 - polls two sources
            await asyncio.sleep(0.02)
        if dispatcher.busy():
            log.warning("shutdown: grace period over with handlers still running; closing anyway")
        await self.stop(code=code, reason=reason)

    async def stop(self, *, code: int | None = None, reason: str = "server shutting down") -> None:
        """Close every connection with ``code`` (default ``SHUTDOWN_CLOSE_CODE``) now and stop listening."""
        if self.transport is None:
            return
        if self._stopping is None:
            # one stop at a time: a second signal during a graceful shutdown, or two callers,
            # wait for the same one instead of tearing the runner down twice
            self._stopping = asyncio.ensure_future(self._stop_once(code, reason))
        await asyncio.shield(self._stopping)

    async def _stop_once(self, code: int | None, reason: str) -> None:
        try:
            await self._stop(code, reason)
        finally:
            self._stopping = None
            if self._gc_frozen:  # even when closing failed or was cancelled
                self._gc_frozen = False
                GcFreezer.release()

    async def _stop(self, code: int | None, reason: str) -> None:
        assert self.transport is not None
        if code is None:
            code = self.settings.shutdown_close_code
        self.admission.closed = True
        if self._listener is not None:
            self._listener.close()
        # RPCs still running (the grace period is over, or there was none) get their one
        # terminal answer before the close: retry elsewhere
        unfinished = WsKitError(
            ErrorCode.UNAVAILABLE, "Server shutting down", retry_after_ms=self.settings.shutdown_retry_after_ms
        )
        aborted = self.transport.dispatcher.abort_rpcs(unfinished)
        if aborted:
            log.info("shutdown: answered %d unfinished RPC(s) with UNAVAILABLE", aborted)
        conns = list(self.transport.connections.values())
        closes = [conn.close(code, reason) for conn in conns]
        for outcome in await asyncio.gather(*closes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.debug("closing a socket failed during shutdown: %r", outcome)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener.wait_closed(), 2.0)
        self._runner = None
        self._listener = None
        self.transport = None
        for guard in self._rate_guards:
            closer = getattr(guard, "aclose", None)
            if closer is not None:
                await closer()
        self._rate_guards = []
        await self.router.hub.close()
        log.info("wskit stopped")

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _keepalive_s(settings: Settings) -> float:
    """Seconds a keep-alive HTTP connection may wait for its next complete request.

    ``HANDSHAKE_TIMEOUT_MS`` again: a request trickled after a first one is the same
    slowloris as a trickled first request. With the guard off (0), aiohttp's default stays.
    """
    if settings.handshake_timeout_ms:
        return settings.handshake_timeout_ms / 1000.0
    return _AIOHTTP_KEEPALIVE_S


#: aiohttp's own default keep-alive timeout (kept when HANDSHAKE_TIMEOUT_MS is 0)
_AIOHTTP_KEEPALIVE_S = 3630.0


def _queue_limits(router: Router[Any], settings: Settings, explicit: frozenset[str]) -> QueueLimits:
    """Each connection's outbound bound: a setting given by keyword or environment, else the
    router's ``send_queue``, else the built-in default, field by field."""
    base = router.send_queue or QueueLimits(
        settings.send_queue_messages, settings.send_queue_bytes, OverflowPolicy(settings.backpressure)
    )
    return QueueLimits(
        settings.send_queue_messages if "send_queue_messages" in explicit else base.max_messages,
        settings.send_queue_bytes if "send_queue_bytes" in explicit else base.max_bytes,
        OverflowPolicy(settings.backpressure) if "backpressure" in explicit else base.policy,
    )


def _check_auth_reachable(
    router: Router[Any], guards: list[Middleware], settings: Settings, *, authenticate: Authenticate | None
) -> None:
    """Fail at start when ``require_auth`` guards every route and nothing can authenticate.

    Such a server refuses every message for ever, typically because ``JWT_SECRET`` was not
    set in this environment. Only the case that is certain fails: an ``authenticate``
    callable, ``JWT_SECRET``, an ``on_open`` hook, or any route (or middleware ahead of
    ``require_auth``) that could call ``ctx.assign_data(user_id=...)`` lets the server start;
    when some routes are guarded and nothing obvious authenticates, an INFO line says so.
    """
    auth = sys.modules.get("wskit.guards.auth")
    if auth is None or authenticate is not None or settings.jwt_secret:
        return  # require_auth cannot be in use without its module, or something authenticates
    require_type = auth.RequireAuth
    routes = router.routes.values()
    guarded = 0
    for route in routes:
        chain = (*guards, *router.middleware, *route.inherited, *route.middleware)
        first = chain[0] if chain else None
        if isinstance(first, require_type) and route.type not in first.exempt:
            guarded += 1
    if not guarded:
        return
    if guarded == len(router.routes) and not router.open_hooks:
        raise ConfigError(
            "require_auth guards every route but nothing can authenticate a connection: set "
            "JWT_SECRET, pass authenticate=, or include auth_routes(verifier) (to make JWT_SECRET "
            "mandatory, pass require=('jwt_secret',))"
        )
    log.info(
        "require_auth guards %d route(s) but neither JWT_SECRET nor authenticate= is set: connections "
        "authenticate only if the application calls ctx.assign_data(user_id=...); pass "
        "require=('jwt_secret',) to make JWT_SECRET mandatory",
        guarded,
    )


def _broker_from(settings: Settings) -> Broker | None:
    if not settings.redis_url:
        return None
    from wskit.pubsub import RedisBroker

    broker: Broker = RedisBroker(settings.redis_url)
    return broker


def _configured_guards(router: Router[Any], settings: Settings) -> list[Middleware]:
    """The guards the settings ask for (``MESSAGE_RATE_LIMIT``)."""
    if not settings.message_rate_limit:
        return []
    from wskit.guards.setup import message_rate_guard

    return [message_rate_guard(settings)]


def _configured_authenticate(router: Router[Any], settings: Settings) -> Authenticate | None:
    """JWT at upgrade and by AUTH message when ``JWT_SECRET`` is set."""
    if not settings.jwt_secret:
        return None
    from wskit.guards.setup import jwt_setup

    if not settings.auth_timeout_ms:
        log.warning(
            "JWT_SECRET is set but AUTH_TIMEOUT_MS is 0: connections without a token may stay "
            "anonymous for ever (set AUTH_TIMEOUT_MS, and protect routes with require_auth)"
        )
    if settings.allowed_origins is None:
        log.warning(
            "JWT tokens are accepted from cookies but ALLOWED_ORIGINS is not set: any web page can "
            "open a socket with your users' cookies (cross-site WebSocket hijacking); set ALLOWED_ORIGINS"
        )
    return jwt_setup(router, settings)


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert_file or not settings.tls_key_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


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
    """Run a :class:`Server` until this coroutine is cancelled (then shut down gracefully)."""
    server = Server(router, **options)
    await server.start()
    try:
        await asyncio.Event().wait()
    finally:
        await server.shutdown()


def _install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def serve(router: Router[Any], *, workers: int | None = None, **options: Any) -> None:
    """Serve ``router`` until SIGINT or SIGTERM (uvloop when installed: ``wskit[fast]``).

    The first signal starts a graceful shutdown (see :meth:`Server.shutdown`); a second
    one closes everything at once. ``workers`` (env ``WORKERS``) > 1 starts that many
    processes sharing the port through ``SO_REUSEPORT``; they need a shared broker
    (``REDIS_URL`` or ``broker=``) so that a publish on one reaches the others.
    """
    settings = load_settings({k: v for k, v in options.items() if k in Settings.__slots__} | {"workers": workers})
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        from wskit.workers import run_workers

        run_workers(router, settings.workers, options, _serve_one)
        return
    _serve_one(router, options)


def _serve_one(router: Router[Any], options: Mapping[str, Any], *, reuse_port: bool = False) -> None:
    _install_uvloop()

    async def main() -> None:
        server = Server(router, reuse_port=reuse_port, **options)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = 0
        forced: list[asyncio.Future[None]] = []

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            stop.set()
            if signals > 1:
                log.warning("second signal: closing every connection now")
                forced.append(asyncio.ensure_future(server.stop()))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        await stop.wait()
        log.info("wskit: shutting down (grace %d ms)", server.settings.shutdown_grace_ms)
        await server.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # closing the loop would restore the default handlers, and a second signal in the
            # moments before the process exits would then kill it (exit -15 after a clean stop)
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)

    asyncio.run(main())
