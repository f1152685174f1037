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
import functools
import importlib.util
import logging
import signal
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wskit.admission import Admission, Authenticate
from wskit.config import ConfigError, Settings, explicit_settings, load_settings
from wskit.connection import QueueLimits
from wskit.gcpolicy import GcFreezer
from wskit.lifetime import Watchdog
from wskit.logs import configure_logging
from wskit.pubsub.broker import Broker
from wskit.router import Middleware, Router
from wskit.runtime import SHUTDOWN_TYPE, Runtime, build_runtime
from wskit.tls import CertificateReloader
from wskit.transports.aiohttp_log import PeerErrorLog
from wskit.transports.aiohttp_server import HandshakeGuard, HttpHandler, Transport, build_app

if TYPE_CHECKING:
    from wskit.transports.picows_upgrade import PicowsHost

__all__ = ["SHUTDOWN_TYPE", "Server", "serve", "serve_async"]

log = logging.getLogger("wskit.server")


class Server:
    """A running (or ready to run) standalone server for ``router``: its runtime (see
    :func:`wskit.runtime.build_runtime`) hosted by picows when installed (``wskit[fast]``),
    else by aiohttp (``WSKIT_TRANSPORT``, see :func:`choose_transport`).

    Besides every setting of :data:`wskit.config.OPTIONS` as a keyword (``host``,
    ``port``, ``path``, ``max_payload_bytes``, ``allowed_origins``, ``idle_timeout_ms``...),
    it takes: ``authenticate`` (``request -> data | None``), ``broker``, ``queue_limits``
    (every connection's outbound bound and policy, over the settings and the router's
    ``send_queue``), ``static_files`` (URL path -> file), ``http_routes`` (URL path ->
    aiohttp handler), ``guards`` (middleware run before the application's), ``env`` (instead
    of ``os.environ``), ``require`` (settings that must be set, e.g. ``("jwt_secret",)``:
    missing ones fail here), ``owns_process`` (``serve()`` sets it: the process is wskit's,
    so the GC policy and the ``wskit`` log level apply; an embedded server leaves both alone
    unless ``gc_freeze_interval_s``/``log_level`` is given), ``tracer_provider`` (the
    OpenTelemetry provider of ``TRACING``'s spans; default: OpenTelemetry's global one).

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
        owns_process: bool = False,
        tracer_provider: Any = None,
        **settings: Any,
    ) -> None:
        self.router = router
        self.settings: Settings = load_settings(settings, env, require=require)
        self.reuse_port = reuse_port
        explicit = explicit_settings(settings, env)
        self._owns_gc = owns_process or "gc_freeze_interval_s" in explicit
        self._owns_log_level = owns_process or "log_level" in explicit
        self._build = functools.partial(
            build_runtime,
            router,
            authenticate=authenticate,
            broker=broker,
            guards=list(guards or []),
            queue_limits=queue_limits,
            env=env,
            require=require,
            tracer_provider=tracer_provider,
            **settings,
        )
        self._static = {route: Path(file) for route, file in (static_files or {}).items()}
        self._http = dict(http_routes or {})
        #: the WebSocket host serving: "aiohttp" or "picows" (WSKIT_TRANSPORT=auto: picows
        #: when installed and nothing needs aiohttp)
        self.transport_name = choose_transport(self.settings.transport, self._static, self._http)
        #: the runtime being served (built at start)
        self.runtime: Runtime | None = None
        #: this server holds a share of the process's GC freezing timer (see wskit.gcpolicy)
        self._gc_frozen = False
        #: what the GC policy tells each collector pass (this server's histogram)
        self._gc_observer: Callable[[float], None] | None = None
        self._stopping: asyncio.Future[None] | None = None
        self.transport: Transport | PicowsHost | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._port: int | None = None
        #: the TLS context and its certificate reloader (with TLS_CERT_FILE, once listening)
        self.tls: CertificateReloader | None = None

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
        return len(self.runtime.connections) if self.runtime is not None else 0

    @property
    def admission(self) -> Admission:
        """The upgrade checks and connection counts (of the started server)."""
        return self._started().admission

    @property
    def watchdog(self) -> Watchdog:
        """The idle, auth, token and ping timers (of the started server)."""
        return self._started().watchdog

    def _started(self) -> Runtime:
        if self.runtime is None:
            raise RuntimeError("the server is not started")
        return self.runtime

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the runtime, bind and start accepting (the router is compiled here, so
        mistakes fail now).

        A start that fails once the runtime runs (a TLS pair that does not load, a port in
        use) stops what it started before it raises, broker and timers included: the caller
        has no server to stop (``async with`` never reaches its exit)."""
        s = self.settings
        if self._owns_log_level:
            logging.getLogger("wskit").setLevel(s.log_level)
        runtime = self.runtime = self._build()
        await runtime.start()
        try:
            if self.transport_name == "picows":
                await self._start_picows(runtime)
            else:
                await self._start_aiohttp(runtime)
        except BaseException:
            try:
                await self._stop_once(None, "server failed to start")
            except Exception:  # the start's own error is the one to raise
                log.exception("wskit: stopping what a failed start had started failed")
            raise

    async def _start_aiohttp(self, runtime: Runtime) -> None:
        s = self.settings
        self.transport = Transport(
            runtime=runtime,
            max_payload_bytes=s.max_payload_bytes,
            ping_interval=s.ping_interval or None,
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
        await self._listen(guard)

    async def _start_picows(self, runtime: Runtime) -> None:
        from wskit.transports.picows_upgrade import PicowsHost

        s = self.settings
        host = self.transport = PicowsHost(runtime, s.max_payload_bytes, s.handshake_timeout_ms / 1000.0, s.path)
        host.start(s.ping_interval)
        await self._listen(host)

    async def _listen(self, factory: Callable[[], asyncio.BaseProtocol]) -> None:
        s = self.settings
        tls = self.tls = CertificateReloader.from_settings(s)
        sock = _bind(s.host, s.port, reuse_port=self.reuse_port)
        loop = asyncio.get_running_loop()
        context = tls.context if tls is not None else None
        try:
            self._listener = await loop.create_server(factory, sock=sock, ssl=context, backlog=1024)
        except BaseException:
            sock.close()  # not yet the listener's to close
            raise
        if tls is not None:
            tls.start()  # renewed files are loaded into that same context (wskit.tls)
        self._port = sock.getsockname()[1]
        log.info("wskit listening on %s (%s)", self.url, self.transport_name)
        if self._owns_gc:
            self._gc_observer = self.runtime.telemetry.gc_seconds.observe if self.runtime is not None else None
            self._gc_frozen = GcFreezer.acquire(s.gc_freeze_interval_s, s.gc_unfreeze_interval_s, self._gc_observer)

    async def shutdown(
        self, *, grace_ms: int | None = None, code: int | None = None, reason: str = "server shutting down"
    ) -> None:
        """Stop gracefully: refuse new connections, tell clients, let running work finish.

        Every connection gets a ``SERVER_SHUTDOWN`` notice (``retryAfterMs``: reconnect
        elsewhere); new messages are answered ``UNAVAILABLE``; handlers and RPCs in flight
        get ``grace_ms`` (default ``SHUTDOWN_GRACE_MS``) to finish; then every connection
        closes with ``code`` (default ``SHUTDOWN_CLOSE_CODE``: 1001, or 1012 for a restart)
        and the broker is closed (its last commands awaited, its presence removed).

        The listener stays open while the work drains: upgrades are refused (503) and
        ``/readyz`` answers 503, so a load balancer that probes it takes this instance out
        of rotation before its connections close, instead of seeing refused connections.
        """
        runtime = self.runtime
        if runtime is None or self.transport is None:
            return
        grace = (self.settings.shutdown_grace_ms if grace_ms is None else grace_ms) / 1000.0
        await runtime.drain(grace, reason)
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
            if self.tls is not None:
                self.tls.stop()
            if self._gc_frozen:  # even when closing failed or was cancelled
                self._gc_frozen = False
                GcFreezer.release(self._gc_observer)

    async def _stop(self, code: int | None, reason: str) -> None:
        runtime = self.runtime
        assert runtime is not None
        if code is None:
            code = self.settings.shutdown_close_code
        listened = self._listener is not None  # a start that failed before listening says nothing here
        if self._listener is not None:
            self._listener.close()
        await runtime.close_connections(code, reason)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.transport is not None and not isinstance(self.transport, Transport):
            await self.transport.stop()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listener.wait_closed(), 2.0)
        self._runner = None
        self._listener = None
        self.transport = None
        await runtime.stop()
        if listened:
            log.info("wskit stopped")

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


#: Seconds within which a second SIGINT/SIGTERM is the same stop request arriving twice (a
#: terminal's Ctrl-C and the workers' parent forwarding it), not a request to stop at once
_SAME_STOP_S = 0.5


def choose_transport(wanted: str, static_files: Mapping[str, Path], http_routes: Mapping[str, HttpHandler]) -> str:
    """The host for ``WSKIT_TRANSPORT=wanted``: picows for ``auto`` when it is installed and
    nothing needs aiohttp (said in a log line when aiohttp is chosen for that reason); a
    feature the asked-for host cannot serve fails here rather than going missing."""
    unserved = [name for name, given in (("static_files", static_files), ("http_routes", http_routes)) if given]
    if wanted == "aiohttp":
        return "aiohttp"
    if wanted == "picows":
        if unserved:
            raise ConfigError(
                f"WSKIT_TRANSPORT=picows cannot serve {' or '.join(unserved)} (aiohttp handlers and files): "
                "use WSKIT_TRANSPORT=auto or aiohttp, or serve them elsewhere"
            )
        if not _picows_installed():
            raise ConfigError("WSKIT_TRANSPORT=picows needs picows: pip install 'wskit[fast]'")
        return "picows"
    if not _picows_installed():
        return "aiohttp"  # the base install: aiohttp is the host, nothing is lost
    if unserved:
        log.info(
            "serving with aiohttp: %s need it (picows, the faster host, serves WebSockets and wskit's own "
            "paths (/healthz, /readyz, /metrics, /wskit.js) only)",
            " and ".join(unserved),
        )
        return "aiohttp"
    return "picows"


def _picows_installed() -> bool:
    return importlib.util.find_spec("picows") is not None


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
    hooked = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in hooked}
    # until the loop's handler is in place, SIGHUP (a reload, of files not read yet) must not
    # kill the starting server by its default action (systemctl reload during a start)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _install_uvloop()

    async def main() -> None:
        server = Server(router, reuse_port=reuse_port, owns_process=True, **options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = 0
        first_at = 0.0
        forced: list[asyncio.Future[None]] = []

        def on_signal() -> None:
            nonlocal signals, first_at
            now = loop.time()
            if signals and now - first_at < _SAME_STOP_S:
                # one stop request delivered twice: a terminal's Ctrl-C reaches every process
                # of its group (workers too) and the workers' parent forwards it once more
                return
            signals += 1
            stop.set()
            if signals == 1:
                first_at = now
            else:
                log.warning("second signal: closing every connection now")
                forced.append(asyncio.ensure_future(server.stop()))

        def on_hangup() -> None:
            # SIGHUP reloads the TLS certificate (as nginx does), and never kills the server
            if server.tls is None:
                log.info("SIGHUP: no TLS certificate to reload")
            else:
                server.tls.reload("SIGHUP")

        # before the port opens: a stop request that comes as soon as clients can connect
        # (a supervisor, a test) must find the handler, not the default that kills (-15)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        # a worker starts with the three blocked (wskit.workers): what came meanwhile is handled now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, hooked)
        await server.start()
        await stop.wait()
        log.info("wskit: shutting down (grace %d ms)", server.settings.shutdown_grace_ms)
        await server.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            # closing the loop would restore the default handlers, and a second signal in the
            # moments before the process exits would then kill it (exit -15 after a clean stop):
            # ignored until serve() returns, then the caller's handlers are back
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)

    try:
        asyncio.run(main())
    finally:
        for sig, handler in previous.items():
            # the caller's handlers are back (Ctrl-C raises KeyboardInterrupt again), except a
            # default SIGTERM or SIGHUP, which stays ignored: the server has stopped, and a
            # second stop request or a reload while the interpreter finishes must not turn exit
            # 0 into a kill. (A Python-level handler would not do: CPython resets those at
            # finalisation.)
            if sig in (signal.SIGTERM, signal.SIGHUP) and handler in (signal.SIG_DFL, None):
                continue
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
