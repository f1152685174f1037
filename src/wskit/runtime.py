"""What a served router becomes: one object that owns everything live, built once from settings.

A :class:`~wskit.router.Router` only declares. Serving it (``serve()``, ``Server``,
``asgi_app``, ``TestClient``) builds a :class:`Runtime` with :func:`build_runtime`, the one
function every host uses, so the settings mean the same everywhere:

- the **codec** (the schema backend and one encoder per outbound type) and the **guarded
  dispatcher** (rate limits before the application's middleware);
- the **hub** (this process's connections and topics) and the **broker** behind it
  (``REDIS_URL``: Redis, else in memory);
- **admission** (origins, caps, ``authenticate`` or ``JWT_SECRET``, bans) and the
  **watchdog** (idle, auth and token timeouts, pings);
- the registry of live connections that readiness and the **shutdown** sequence walk.

When the settings add routes of their own (``JWT_SECRET``'s ``AUTH``), the runtime serves a
copy of the router with them: the application's router is never changed. The router's verbs
(``router.publish``...) and every handler's ``ctx`` talk to this object.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from wskit.admission import Admission, Authenticate
from wskit.codec import Codec
from wskit.config import ConfigError, Settings, explicit_settings, load_settings
from wskit.connection import Connection, OverflowPolicy, QueueLimits
from wskit.dispatch import Dispatcher
from wskit.errors import CloseCode, ErrorCode, WsKitError
from wskit.hub import Hub
from wskit.lifetime import Watchdog
from wskit.metrics import MetricsFile
from wskit.metrics import start as start_metrics
from wskit.protocol import (
    CANCEL_TYPE,
    HEARTBEAT_TYPE,
    SHUTDOWN_TYPE,
    SUBSCRIBE_TYPE,
    UNSUBSCRIBE_TYPE,
    dumps,
    frame,
    type_prefix,
)
from wskit.pubsub.broker import Broker, BrokerState, Member, Publication, Role, missing_roles, roles_of
from wskit.pubsub.memory import MemoryBroker
from wskit.router import Middleware, Router
from wskit.schema.declarations import MessageSchema
from wskit.telemetry import Telemetry

__all__ = ["DRAIN_LINGER_S", "SHUTDOWN_TYPE", "Runtime", "build_runtime", "shutdown_notice"]

log = logging.getLogger("wskit.runtime")

#: Loop turns a shutdown gives the readers an aborted RPC restarts: one to end the RPC's task,
#: one to start the reader, one for it to read what is buffered.
_READER_TURNS = 3

#: Seconds a graceful shutdown keeps idle connections open after the SERVER_SHUTDOWN notice
#: (at most the grace period), so frames already sent are answered rather than dropped.
DRAIN_LINGER_S = 1.0

#: types the framework itself routes (bounded ``type`` label values besides the routes)
_FRAMEWORK_TYPES = (HEARTBEAT_TYPE, CANCEL_TYPE, SUBSCRIBE_TYPE, UNSUBSCRIBE_TYPE)

#: The notice every client gets when the server begins a graceful shutdown.
_SHUTDOWN_PREFIX = type_prefix(SHUTDOWN_TYPE)


class Runtime:
    """A router being served: codec, hub and broker, guarded dispatcher, admission, watchdog,
    the live connections, readiness and shutdown.

    Build it with :func:`build_runtime` (settings from keywords and the environment); the
    constructor takes finished parts, with in-memory defaults for tests.
    """

    def __init__(
        self,
        router: Router[Any],
        *,
        settings: Settings | None = None,
        broker: Broker | None = None,
        authenticate: Authenticate | None = None,
        guards: Sequence[Middleware] = (),
        frame_guards: Sequence[Middleware] = (),
        queue_limits: QueueLimits | None = None,
        served: Router[Any] | None = None,
        tracer_provider: Any = None,
    ) -> None:
        #: the application's router, as it declared itself (never changed)
        self.router = router
        #: what is served: ``router``, or a copy of it with the settings' own routes added
        self.routes = served if served is not None else router
        self.settings = settings if settings is not None else Settings()
        #: the OpenTelemetry TracerProvider spans come from with TRACING on (None: the global one)
        self.tracer_provider = tracer_provider
        s = self.settings
        self.codec = Codec(self.routes)
        self.hub = Hub(broker if broker is not None else MemoryBroker(), announces=self.routes.announces)
        self.queue_limits = queue_limits or self.routes.send_queue or QueueLimits()
        #: counters and structured events (see wskit.telemetry); counted only with METRICS on
        self.telemetry = Telemetry(
            types=[*self.routes.routes, *_FRAMEWORK_TYPES],
            outbound=list(self.routes.outbound),
        )
        self.telemetry.counting = s.metrics
        self._add_gauges(self.telemetry)
        self.admission = Admission(
            telemetry=self.telemetry,
            authenticate=authenticate,
            allowed_origins=s.allowed_origins,
            max_connections=s.max_connections,
            max_connections_per_ip=s.max_connections_per_ip,
            trusted_proxies=s.trusted_proxies,
            broker=lambda: self.hub.broker,
        )
        self.watchdog = Watchdog(idle_ms=s.idle_timeout_ms, auth_ms=s.auth_timeout_ms, token_leeway_s=s.jwt_leeway_s)
        #: the rate guards the settings built (closed with the runtime)
        self.frame_guards = list(frame_guards)
        self.dispatcher = Dispatcher(self, guards=list(guards), frame_guards=self.frame_guards)
        self.dispatcher.retry_after_ms = s.shutdown_retry_after_ms
        #: every connection from its admission to its release (what shutdown closes)
        self.connections: dict[Connection, None] = {}
        #: started and not yet stopped
        self.serving = False
        self._drain_reason = "server shutting down"
        self._drain_began = False
        #: this process's file in METRICS_DIR while serving (see wskit.metrics), else None
        self.metrics_file: MetricsFile | None = None

    def _add_gauges(self, telemetry: Telemetry) -> None:
        """Values read when scraped: nothing on the hot path keeps them."""
        telemetry.gauges["wskit_connections"] = ("Open WebSocket connections.", lambda: float(len(self.connections)))
        telemetry.gauges["wskit_connections_limit"] = (
            "MAX_CONNECTIONS of this process (0: no limit): alert on wskit_connections nearing it.",
            lambda: float(self.admission.max_connections),
        )
        telemetry.gauges["wskit_processes"] = (
            "1 per serving process: summed over workers, how many serve (compare the 0/1 gauges with it).",
            lambda: 1.0,
        )
        telemetry.gauges["wskit_ready"] = ("1 while /readyz answers 200.", lambda: float(self.ready()[0]))
        telemetry.gauges["wskit_draining"] = (
            "1 from the start of a graceful shutdown.",
            lambda: float(self.admission.closed),
        )
        telemetry.gauges["wskit_broker_up"] = (
            "1 while the broker link can carry publishes.",
            lambda: float(self.hub.broker.state is BrokerState.READY),
        )
        telemetry.broker_reconnects = lambda: int(getattr(self.hub.broker, "reconnects", 0))
        telemetry.deliveries = self._deliveries_by_type

    def _deliveries_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for head, count in list(self.hub.delivered_heads.items()):
            try:
                type_name = str(json.loads(head + b"}")["type"])
            except (ValueError, KeyError, TypeError):
                type_name = "other"
            out[type_name] = out.get(type_name, 0) + count
        return out

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the broker and become the runtime of the router (its verbs reach this one).

        Raises :class:`~wskit.errors.UsageError` when another runtime serves the router now.
        """
        needs: dict[Role, str] = {Role.PUBSUB: "serving a router"}
        if self.routes.history:
            needs[Role.HISTORY] = f"router.enable_history({self.routes.history[0].pattern!r})"
        problems = missing_roles(self.hub.broker, needs)
        if problems:
            raise ConfigError("; ".join(problems))
        self.router.attach(self)
        if self.routes is not self.router:
            self.routes.attach(self)
        await self.hub.start()
        self.serving = True
        self.metrics_file = start_metrics(self.settings, self.telemetry)

    def ready(self) -> tuple[bool, str]:
        """Readiness: the broker can carry publishes and no shutdown has begun; and why not."""
        state = self.hub.broker.state
        if self.admission.closed:
            return False, "draining"
        return state is BrokerState.READY, f"broker {state}"

    async def drain(self, grace_s: float, reason: str = "server shutting down") -> None:
        """The graceful part of a shutdown: refuse upgrades, send every connection the
        ``SERVER_SHUTDOWN`` notice, answer new messages ``UNAVAILABLE``, and give running
        handlers and RPCs up to ``grace_s`` seconds.

        Each connection's notice says when to come back: ``SHUTDOWN_RETRY_AFTER_MS`` plus its
        own uniform draw in ``[0, SHUTDOWN_RETRY_JITTER_MS)``, so the clients of a restarted
        server spread over that window instead of all reconnecting in the same second."""
        self.admission.closed = True
        self._drain_reason = reason
        self._drain_began = True
        dispatcher = self.dispatcher
        dispatcher.draining = True
        self.telemetry.shutdown_phase("draining", connections=len(self.connections), grace_ms=int(grace_s * 1000))
        notified = sum(conn.send_nowait(shutdown_notice(reason, self.settings)) for conn in list(self.connections))
        if self.dispatcher.telemetry is not None:
            self.telemetry.sent[SHUTDOWN_TYPE] += notified
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + grace_s
        # frames a client sent before it read the notice are still on their way: closing at
        # once would drop them unanswered (a server discards what follows its close frame);
        # for a moment they are answered UNAVAILABLE instead, unless every client left already
        linger_until = started + min(grace_s, DRAIN_LINGER_S)
        while loop.time() < deadline:
            if not dispatcher.busy() and (not self.connections or loop.time() >= linger_until):
                break
            await asyncio.sleep(0.02)
        if dispatcher.busy():
            log.warning("shutdown: grace period over with handlers still running; closing anyway")
        self.telemetry.shutdown_phase(
            "drained", took_ms=int((loop.time() - started) * 1000), unfinished=dispatcher.busy()
        )

    def tell_draining(self, conn: Connection) -> None:
        """Give a connection that opened after the drain began the notice the others got."""
        if conn.send_nowait(shutdown_notice(self._drain_reason, self.settings)) and self.dispatcher.telemetry:
            self.telemetry.sent[SHUTDOWN_TYPE] += 1

    async def close_connections(self, code: int, reason: str) -> None:
        """Close every connection with ``code`` now; RPCs still running get their one terminal
        answer first (``UNAVAILABLE``, retryable: ask another instance)."""
        self.admission.closed = True
        # from here every message read is answered UNAVAILABLE instead of started
        self.dispatcher.draining = True
        unfinished = WsKitError(
            ErrorCode.UNAVAILABLE, "Server shutting down", retry_after_ms=self.settings.shutdown_retry_after_ms
        )
        aborted = self.dispatcher.abort_rpcs(unfinished)
        if aborted:
            log.info("shutdown: answered %d unfinished RPC(s) with UNAVAILABLE", aborted)
            # an aborted RPC that held a connection's reading at the in-flight bound hands it on
            # as it ends: let those readers answer the requests already received (they are
            # read without waiting) before the close
            for _ in range(_READER_TURNS):
                await asyncio.sleep(0)
        if self.connections or self._drain_began:
            # a stop with nothing to close (a failed start, a test's server) is not a shutdown to report
            self.telemetry.shutdown_phase("closing", connections=len(self.connections), code=code, aborted_rpcs=aborted)
        closes = [conn.close(code, reason) for conn in list(self.connections)]
        for outcome in await asyncio.gather(*closes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.debug("closing a socket failed during shutdown: %r", outcome)

    async def stop(self) -> None:
        """Release what the runtime holds: the rate guards' clients, then the broker (its last
        commands awaited, this instance's presence removed)."""
        self.serving = False
        if self._drain_began:
            self.telemetry.shutdown_phase("stopping broker")
        for guard in self.frame_guards:
            closer = getattr(guard, "aclose", None)
            if closer is not None:
                await closer()
        await self.hub.close()
        shared, self.metrics_file = self.metrics_file, None
        if shared is not None:
            await shared.close()  # the final figures, once every connection is gone

    # -- the router's verbs ----------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        schema: MessageSchema[Any],
        payload: Any = None,
        *,
        meta: Mapping[str, Any] | None = None,
        exclude: str | None = None,
        overflow: OverflowPolicy | str | None = None,
    ) -> None:
        """See :meth:`wskit.router.Router.publish` (the topic name is checked here too)."""
        name = self.routes.topic_policy.check_name(topic)
        head, tail = self.codec.encode_parts(schema, payload)
        publication = Publication(name, head, tail, dumps(dict(meta)) if meta else None, exclude)
        if overflow is not None:
            publication.overflow = OverflowPolicy(overflow)
        telemetry = self.telemetry
        if not self.dispatcher.telemetry:
            await self.hub.publish(publication, self.routes.history_for(name))
            return
        telemetry.publishes += 1
        started = time.perf_counter()
        try:
            await self.hub.publish(publication, self.routes.history_for(name))
        finally:
            telemetry.publish_seconds.observe(time.perf_counter() - started)

    def _require(self, role: Role, verb: str) -> None:
        """``UNIMPLEMENTED`` naming the broker when it does not play ``role`` (never a silent
        local-only answer)."""
        if role not in self.roles:
            name = type(self.hub.broker).__name__
            raise WsKitError(ErrorCode.UNIMPLEMENTED, f"{verb} needs a broker with {role}; {name} has none")

    @property
    def roles(self) -> frozenset[Role]:
        """The roles the broker plays (see :mod:`wskit.pubsub.broker`)."""
        return roles_of(self.hub.broker)

    async def presence(self, topic: str) -> list[Member]:
        """See :meth:`wskit.router.Router.presence`."""
        self._require(Role.PRESENCE, "presence")
        return await self.hub.broker.presence(self.routes.topic_policy.check_name(topic))

    async def send_to_user(
        self, user_id: str, schema: MessageSchema[Any], payload: Any = None, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """See :meth:`wskit.router.Router.send_to_user`."""
        self._require(Role.USERS, "send_to_user")
        data = self.codec.encode(schema, payload, meta=dumps(dict(meta)) if meta else b"{}")
        await self.hub.start()
        await self.hub.broker.send_to_user(str(user_id), data)

    async def disconnect_user(self, user_id: str, code: int = 4000, reason: str = "") -> None:
        """See :meth:`wskit.router.Router.disconnect_user`."""
        self._require(Role.USERS, "disconnect_user")
        await self.hub.start()
        await self.hub.broker.disconnect_user(str(user_id), int(code), reason)

    async def ban_user(self, user_id: str, ttl_s: float | None = None, *, disconnect: bool = True) -> None:
        """See :meth:`wskit.router.Router.ban_user`."""
        self._require(Role.USERS, "ban_user")
        await self.hub.start()
        await self.hub.broker.ban(str(user_id), ttl_s)
        if disconnect:
            await self.hub.broker.disconnect_user(str(user_id), int(CloseCode.POLICY_VIOLATION), "banned")

    async def unban_user(self, user_id: str) -> None:
        """See :meth:`wskit.router.Router.unban_user`."""
        self._require(Role.USERS, "unban_user")
        await self.hub.start()
        await self.hub.broker.unban(str(user_id))

    def __repr__(self) -> str:
        state = "serving" if self.serving else "idle"
        return f"<Runtime {state} routes={sorted(self.routes.routes)} connections={len(self.connections)}>"


def shutdown_notice(reason: str, settings: Settings, *, draw: random.Random | None = None) -> bytes:
    """One connection's ``SERVER_SHUTDOWN`` frame: ``retryAfterMs`` is the base setting plus
    a uniform jitter below ``shutdown_retry_jitter_ms`` (``draw``: the random source, for tests)."""
    retry_after = settings.shutdown_retry_after_ms
    if settings.shutdown_retry_jitter_ms > 0:
        retry_after += (draw or _jitter).randrange(settings.shutdown_retry_jitter_ms)
    return frame(_SHUTDOWN_PREFIX, b"{}", dumps({"reason": reason, "retryAfterMs": retry_after}))


#: not a secret, only a spread: the module's generator, seeded by the OS per process
_jitter = random.Random()


def build_runtime(
    router: Router[Any],
    *,
    authenticate: Authenticate | None = None,
    broker: Broker | None = None,
    guards: Sequence[Middleware] = (),
    queue_limits: QueueLimits | None = None,
    env: Mapping[str, str] | None = None,
    require: tuple[str, ...] = (),
    tracer_provider: Any = None,
    **settings: Any,
) -> Runtime:
    """The runtime of ``router`` under these settings: the one wiring every host uses.

    Every setting of :data:`wskit.config.OPTIONS` is a keyword and has an environment
    variable (``env`` instead of ``os.environ``); the keyword wins. ``broker``: when not
    given, ``RedisBroker`` if ``REDIS_URL`` is set, else in memory. ``authenticate``: the
    application's upgrade check, which replaces ``JWT_SECRET``'s (a warning says so when both
    are given). ``guards``: middleware run before the application's. ``queue_limits``: every
    connection's outbound bound, over the settings and the router's ``send_queue``.
    ``require``: settings that must be set. ``tracer_provider``: an OpenTelemetry
    ``TracerProvider`` for the spans of ``TRACING`` (default: OpenTelemetry's global one).

    Raises :class:`~wskit.config.ConfigError` for a bad or missing setting, and when
    ``require_auth`` guards every route but nothing can authenticate a connection.
    """
    s = load_settings(settings, env, require=require)
    served = router
    if authenticate is not None and s.jwt_secret:
        # the application's authenticate decides who connects; wskit does not also verify
        # tokens behind its back, and says so rather than ignore the secret quietly
        log.warning(
            "JWT_SECRET is set but authenticate= was given, which replaces wskit's JWT check: tokens are "
            "verified only if your authenticate does it (wskit.guards.jwt_authenticate), and no AUTH route is "
            "added; unset JWT_SECRET to silence this"
        )
    elif s.jwt_secret:
        authenticate, served = _jwt(router, s)
    _check_auth_reachable(served, list(guards), s, authenticate=authenticate)
    rate_guards = _rate_guards(s)
    limits = queue_limits or _queue_limits(router, s, explicit_settings(settings, env))
    return Runtime(
        router,
        settings=s,
        broker=broker if broker is not None else _broker_from(s),
        authenticate=authenticate,
        guards=[*guards, *rate_guards],
        frame_guards=rate_guards,
        queue_limits=limits,
        served=served,
        tracer_provider=tracer_provider,
    )


def _jwt(router: Router[Any], settings: Settings) -> tuple[Authenticate, Router[Any]]:
    """JWT at the upgrade and by ``AUTH`` message: the ``authenticate`` and what to serve (a
    copy of the router with the ``AUTH`` route, unless it has its own)."""
    from wskit.guards.setup import jwt_guard

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
    authenticate, auth_routes = jwt_guard(settings, router)
    if auth_routes is None:
        return authenticate, router
    served = router.copy()
    served.include(auth_routes)
    return authenticate, served


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
    if authenticate is not None or settings.jwt_secret:
        return
    guarded = 0
    for route in router.routes.values():
        chain = (*guards, *router.middleware, *route.inherited, *route.middleware)
        first = chain[0] if chain else None
        # RequireAuth says so itself (``requires_user``), so this needs no import of it
        if getattr(first, "requires_user", False) and route.type not in getattr(first, "exempt", ()):
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


def _broker_from(settings: Settings) -> Broker | None:
    if not settings.redis_url:
        return None
    from wskit.pubsub import RedisBroker

    broker: Broker = RedisBroker(settings.redis_url)
    return broker


def _rate_guards(settings: Settings) -> list[Middleware]:
    """The guards the settings ask for (``MESSAGE_RATE_LIMIT``)."""
    if not settings.message_rate_limit:
        return []
    from wskit.guards.setup import message_rate_guard

    return [message_rate_guard(settings)]
