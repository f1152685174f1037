"""The router: message types to typed handlers, middleware, lifecycle hooks, composition.

A router only declares: routes, middleware, hooks, topic, history, presence and subscribe
policy. Serving it builds a :class:`~wskit.runtime.Runtime` (``serve()``, ``Server``,
``asgi_app``, ``TestClient``), which compiles the declarations into one decoder and one
pipeline per route and owns everything live; the router's own verbs (``publish``,
``presence``, ``send_to_user``, ``ban_user``...) delegate to the runtime serving it. Serving
never changes the router. Mistakes are reported when they are made
(:class:`~wskit.errors.UsageError` at registration), not when the first client hits them.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from wskit.connection import OverflowPolicy, QueueLimits
from wskit.context import Context
from wskit.errors import UsageError
from wskit.schema.declarations import MessageSchema, RpcSchema
from wskit.schema.registry import select_validator
from wskit.schema.validator import Validator
from wskit.topics import HistoryPolicy, TopicPolicy, topic_matches

if TYPE_CHECKING:
    from wskit.dispatch import Dispatcher
    from wskit.hub import Hub
    from wskit.pubsub.broker import Member
    from wskit.runtime import Runtime

__all__ = ["ErrorHook", "Handler", "LifecycleHook", "Middleware", "Route", "Router"]

P = TypeVar("P")
D = TypeVar("D")

#: ``async def handler(ctx: Context[P]) -> None`` (or ``Context[P, AppData]``: any data type)
Handler = Callable[[Context[P, Any]], Awaitable[None]]
#: ``async def middleware(ctx, call_next) -> None``: call ``await call_next()`` to go on.
Middleware = Callable[[Context[Any, Any], Callable[[], Awaitable[None]]], Awaitable[None]]
#: ``on_open`` / ``on_close`` hook (sync or async).
LifecycleHook = Callable[[Context[Any, Any]], Awaitable[None] | None]
#: ``on_error(ctx, exc)`` hook (sync or async).
ErrorHook = Callable[[Context[Any, Any], BaseException], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Route:
    """One registered message type: its schema, handler and route-level middleware."""

    schema: MessageSchema[Any]
    handler: Handler[Any]
    middleware: tuple[Middleware, ...] = ()
    rpc: RpcSchema[Any, Any] | None = None
    #: global middleware of an included router, run after the including router's own
    inherited: tuple[Middleware, ...] = ()

    @property
    def type(self) -> str:
        return self.schema.type


def _annotation_of(handler: Callable[..., Any], schema: MessageSchema[Any]) -> Any:
    """The resolved annotation of the handler's first parameter (None when unknowable).

    Annotations are resolved in the handler's module. A handler defined inside a function
    may name a class local to it (under ``from __future__ import annotations`` that is only
    a string), which cannot be resolved there: its own name then stands in when it is the
    name of the declared payload model, and nothing is checked otherwise.
    """
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params:
        raise UsageError(f"handler {handler.__qualname__} must take the context as its first argument")
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # noqa: BLE001 - unresolvable forward references: see below
        return _named_annotation(params[0].annotation, schema)
    return hints.get(params[0].name)


def _named_annotation(text: object, schema: MessageSchema[Any]) -> Any:
    """``Context[Model]`` when the unresolved annotation ``text`` names the declared model."""
    if not isinstance(text, str):
        return None
    head, _, rest = text.replace(" ", "").partition("[")
    first = rest.rstrip("]").split(",")[0]
    model = schema.payload_model
    if head.rpartition(".")[2] == "Context" and model is not None and first == getattr(model, "__name__", None):
        return Context[model]  # type: ignore[valid-type]
    return None


def _postponed(handler: Any) -> bool:
    """Whether the handler's first parameter is annotated with a string (postponed)."""
    try:
        first = next(iter(inspect.signature(handler).parameters.values()))
    except (StopIteration, TypeError, ValueError):
        return False
    return isinstance(first.annotation, str)


def _check_handler(handler: Any, schema: MessageSchema[Any]) -> None:
    if not callable(handler):
        raise UsageError(f"handler for {schema.type!r} must be callable, got {handler!r}")
    if not inspect.iscoroutinefunction(handler) and not inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004
    ):
        raise UsageError(f"handler for {schema.type!r} must be an async function (async def)")
    annotation = _annotation_of(handler, schema)
    if annotation is None:
        return
    if typing.get_origin(annotation) is Context:
        declared = (typing.get_args(annotation) or (Any,))[0]  # Context[P] or Context[P, AppData]
        expected = schema.payload_model if schema.payload_model is not None else type(None)
        if declared is Any or declared is expected:
            return
        if isinstance(declared, type) and isinstance(expected, type) and issubclass(expected, declared):
            return
        if _postponed(handler) and getattr(declared, "__name__", None) == getattr(expected, "__name__", None):
            # a string annotation resolved in the module found a class of the same name: the
            # handler may mean a local class that shadows it, which only its frame could tell
            return
        raise UsageError(
            f"handler {handler.__qualname__} is annotated Context[{getattr(declared, '__name__', declared)}] "
            f"but {schema.type!r} carries {getattr(expected, '__name__', expected)}"
        )
    if annotation is not Context and not (isinstance(annotation, type) and issubclass(annotation, Context)):
        raise UsageError(
            f"handler {handler.__qualname__}: first parameter should be annotated Context[...], got {annotation!r}"
        )


def _claim(declared: dict[str, tuple[MessageSchema[Any], str]], schema: MessageSchema[Any], where: str) -> None:
    """Record ``schema`` in ``declared``; raise when its type is already declared with another
    payload (the exported contract, and a client decoding by type, need one payload per type)."""
    found = declared.get(schema.type)
    if found is None:
        declared[schema.type] = (schema, where)
        return
    other, other_where = found
    if other is schema or (other.payload_model is schema.payload_model and dict(other.meta) == dict(schema.meta)):
        return
    raise UsageError(
        f"message type {schema.type!r} is declared twice with different payloads: {_payload(other)} "
        f"({other_where}) and {_payload(schema)} ({where}); one type has one payload, whichever way it "
        "travels: rename one of them, or declare the message once and reuse it"
    )


def _payload(schema: MessageSchema[Any]) -> str:
    model = schema.payload_model
    return "no payload" if model is None else f"{model.__module__}.{model.__qualname__}"


class Router(Generic[D]):
    """Routes messages by ``type`` to typed handlers.

    Options (keyword-only):
    ``validator``: ``"pydantic"``, ``"msgspec"``, a :class:`Validator`, or None to pick from
    the declared models (msgspec when they are msgspec Structs, else pydantic).
    ``validate_outbound`` (default True): check outbound payloads against their schema.
    ``topic_policy``: names, normalisation, limits and authorisation of topics.
    ``max_inflight_rpcs`` (default 64): RPCs one connection may have running at once;
    at the limit the connection's reading pauses until one finishes.
    ``max_inflight_bytes`` (default 4 MiB): the same bound on the frame bytes of those RPCs
    (each holds its decoded request), so a connection's inbound memory is bounded by about
    this plus one frame (``MAX_PAYLOAD_BYTES``), not 64 largest frames. An RPC may always
    start when none is running.
    ``send_queue``: this application's default bound and policy for each connection's
    outbound queue, e.g. ``QueueLimits(256, policy=OverflowPolicy.DROP_OLDEST)`` for a live
    ticker (None: the server's defaults). The server's own settings win field by field when
    they are set (``backpressure=`` or ``BACKPRESSURE_POLICY``, ``send_queue_messages``,
    ``send_queue_bytes``), so an operator can override what the code chose; a single publish
    may still pick its own policy (``publish(..., overflow=...)``).
    """

    def __init__(
        self,
        *,
        validator: Validator | str | None = None,
        validate_outbound: bool = True,
        topic_policy: TopicPolicy | None = None,
        max_inflight_rpcs: int = 64,
        max_inflight_bytes: int = 4 * 1024 * 1024,
        send_queue: QueueLimits | None = None,
    ) -> None:
        if max_inflight_rpcs < 1:
            raise UsageError("max_inflight_rpcs must be >= 1")
        if max_inflight_bytes < 1:
            raise UsageError("max_inflight_bytes must be >= 1")
        if send_queue is not None and not isinstance(send_queue, QueueLimits):
            raise UsageError(f"send_queue must be a QueueLimits, got {send_queue!r}")
        self.max_inflight_rpcs = max_inflight_rpcs
        self.max_inflight_bytes = max_inflight_bytes
        self.send_queue = send_queue
        self._validator_choice = validator
        self.validate_outbound = validate_outbound
        self.topic_policy = topic_policy or TopicPolicy()
        self.routes: dict[str, Route] = {}
        self.middleware: list[Middleware] = []
        self.open_hooks: list[LifecycleHook] = []
        self.close_hooks: list[LifecycleHook] = []
        self.error_hooks: list[ErrorHook] = []
        self._validator: Validator | None = None
        #: the runtime serving this router (see :attr:`runtime`)
        self._runtime: Runtime | None = None
        self.history: list[HistoryPolicy] = []
        self.presence_patterns: list[str] = []
        #: patterns of the topics clients may subscribe to themselves (``allow_subscribe``)
        self.subscribe_patterns: list[str] = []
        #: server-to-client messages declared with :meth:`emits`, by type
        self.emitted: dict[str, MessageSchema[Any]] = {}
        #: topic patterns each emitted type is published on (empty: sent to connections)
        self.emitted_topics: dict[str, tuple[str, ...]] = {}
        self._history_cache: dict[str, HistoryPolicy | None] = {}

    # -- registration ----------------------------------------------------------------------

    @overload
    def on(
        self, schema: MessageSchema[P], handler: None = None, *, middleware: Sequence[Middleware] = ()
    ) -> Callable[[Handler[P]], Handler[P]]: ...
    @overload
    def on(
        self, schema: MessageSchema[P], handler: Handler[P], *, middleware: Sequence[Middleware] = ()
    ) -> Handler[P]: ...
    def on(
        self, schema: MessageSchema[P], handler: Handler[P] | None = None, *, middleware: Sequence[Middleware] = ()
    ) -> Any:
        """Register an event handler for ``schema`` (as a decorator, or with ``handler``)."""
        if isinstance(schema, RpcSchema):
            raise UsageError(f"{schema!r} is an RPC: register it with router.rpc(...)")
        if not isinstance(schema, MessageSchema):
            raise UsageError(f"router.on() takes a message(...) declaration, got {schema!r}")
        if handler is not None:
            self._add(Route(schema, handler, tuple(middleware)))
            return handler

        def decorate(fn: Handler[P]) -> Handler[P]:
            self._add(Route(schema, fn, tuple(middleware)))
            return fn

        return decorate

    @overload
    def rpc(
        self, schema: RpcSchema[P, Any], handler: None = None, *, middleware: Sequence[Middleware] = ()
    ) -> Callable[[Handler[P]], Handler[P]]: ...
    @overload
    def rpc(
        self, schema: RpcSchema[P, Any], handler: Handler[P], *, middleware: Sequence[Middleware] = ()
    ) -> Handler[P]: ...
    def rpc(
        self, schema: RpcSchema[P, Any], handler: Handler[P] | None = None, *, middleware: Sequence[Middleware] = ()
    ) -> Any:
        """Register the handler of an RPC declared with :func:`wskit.rpc`."""
        if not isinstance(schema, RpcSchema):
            raise UsageError(f"router.rpc() takes an rpc(...) declaration, got {schema!r}")
        if handler is not None:
            self._add(Route(schema.request, handler, tuple(middleware), schema))
            return handler

        def decorate(fn: Handler[P]) -> Handler[P]:
            self._add(Route(schema.request, fn, tuple(middleware), schema))
            return fn

        return decorate

    def _add(self, route: Route) -> None:
        _check_handler(route.handler, route.schema)
        for mw in route.middleware:
            if not callable(mw):
                raise UsageError(f"middleware of {route.type!r} must be callable, got {mw!r}")
        if route.type in self.routes:
            owner = self.routes[route.type].handler.__qualname__
            raise UsageError(f"message type {route.type!r} already has a handler ({owner})")
        declared = self.declared()
        _claim(declared, route.schema, f"routed by {route.handler.__qualname__}")
        if route.rpc is not None:
            _claim(declared, route.rpc.response, f"the response of rpc {route.type!r}")
        self.routes[route.type] = route
        self._changed()

    def emits(self, *messages: MessageSchema[Any], topics: Sequence[str] = ()) -> None:
        """Declare server-to-client messages that handlers ``send`` or ``publish``.

        Routed types and RPC responses are known already; these complete the contract the
        exporters write (AsyncAPI, TypeScript) and bound the ``type`` label of the metrics.
        ``topics``: the topic patterns (as in :meth:`allow_subscribe`) they are published on,
        for the exported document. Declaring a message again adds its topics.

        Raises :class:`UsageError` for something that is not a ``message(...)`` (an RPC's
        response is declared by the RPC), and for a type already declared with another payload.
        """
        declared = self.declared()
        for schema in messages:
            if isinstance(schema, RpcSchema):
                raise UsageError(
                    f"emits() takes message(...) declarations; {schema!r} is an RPC, whose response "
                    "the router knows once the RPC is registered"
                )
            if not isinstance(schema, MessageSchema):
                raise UsageError(f"emits() takes message(...) declarations, got {schema!r}")
            _claim(declared, schema, "declared by emits()")
        for schema in messages:
            self.emitted[schema.type] = schema
            known = self.emitted_topics.get(schema.type, ())
            self.emitted_topics[schema.type] = known + tuple(t for t in topics if t not in known)
        self._changed()

    def declared(self) -> dict[str, tuple[MessageSchema[Any], str]]:
        """Every message type this router names, inbound and outbound: its schema and where
        it was declared (one type has one payload, whichever way it travels)."""
        out: dict[str, tuple[MessageSchema[Any], str]] = {}
        for route in self.routes.values():
            out[route.type] = (route.schema, f"routed by {route.handler.__qualname__}")
            if route.rpc is not None:
                out.setdefault(route.rpc.response.type, (route.rpc.response, f"the response of rpc {route.type!r}"))
        for name, schema in self.emitted.items():
            out.setdefault(name, (schema, "declared by emits()"))
        return out

    @property
    def outbound(self) -> dict[str, MessageSchema[Any]]:
        """The messages this router's handlers may send: RPC responses and :meth:`emits`."""
        out = {r.rpc.response.type: r.rpc.response for r in self.routes.values() if r.rpc is not None}
        out.update(self.emitted)
        return out

    def use(self, middleware: Middleware) -> Middleware:
        """Add global middleware (runs for every message, in registration order)."""
        if not callable(middleware):
            raise UsageError(f"middleware must be callable, got {middleware!r}")
        self.middleware.append(middleware)
        self._changed()
        return middleware

    def on_open(self, hook: LifecycleHook) -> LifecycleHook:
        """Run ``hook(ctx)`` when a connection opens (raise or ``ctx.close`` to refuse it)."""
        self.open_hooks.append(hook)
        return hook

    def on_close(self, hook: LifecycleHook) -> LifecycleHook:
        """Run ``hook(ctx)`` after a connection closed (``ctx.close_code`` says how)."""
        self.close_hooks.append(hook)
        return hook

    def on_error(self, hook: ErrorHook) -> ErrorHook:
        """Run ``hook(ctx, exc)`` for every unexpected exception of a handler or middleware.

        A raised :class:`WsKitError` is an answer, not a failure: it goes to the client and
        is not reported here.
        """
        self.error_hooks.append(hook)
        return hook

    def include(self, other: Router[Any]) -> Router[D]:
        """Merge ``other``'s routes, hooks and middleware into this router.

        ``other``'s global middleware applies to ``other``'s routes only, after this router's.
        Raises :class:`UsageError` for a message type both routers handle.
        """
        if other is self:
            raise UsageError("a router cannot include itself")
        clash = set(self.routes) & set(other.routes)
        if clash:
            raise UsageError(f"include(): message types {sorted(clash)} are handled by both routers")
        declared = self.declared()
        for schema, where in other.declared().values():
            _claim(declared, schema, f"{where} in the included router")
        for name, schema in other.emitted.items():
            self.emitted[name] = schema
            known = self.emitted_topics.get(name, ())
            self.emitted_topics[name] = known + tuple(t for t in other.emitted_topics.get(name, ()) if t not in known)
        for route in other.routes.values():
            self.routes[route.type] = Route(
                route.schema, route.handler, route.middleware, route.rpc, tuple(other.middleware) + route.inherited
            )
        self.history.extend(other.history)
        for pattern in other.presence_patterns:
            self.enable_presence_events(pattern)
        for pattern in other.subscribe_patterns:
            self.allow_subscribe(pattern)
        self._history_cache.clear()
        self.open_hooks.extend(other.open_hooks)
        self.close_hooks.extend(other.close_hooks)
        self.error_hooks.extend(other.error_hooks)
        self._changed()
        return self

    def _changed(self) -> None:
        self._validator = None

    # -- declarations derived from the others ----------------------------------------------

    @property
    def validator(self) -> Validator:
        """The schema backend (chosen from the declared models on first use when not given)."""
        if self._validator is None:
            models: list[type | None] = [r.schema.payload_model for r in self.routes.values()]
            models += [r.rpc.response.payload_model for r in self.routes.values() if r.rpc is not None]
            self._validator = select_validator(self._validator_choice, [m for m in models if m is not None])
        return self._validator

    def copy(self) -> Router[D]:
        """A router with the same declarations, to extend without touching this one.

        The runtime serves such a copy when the settings add routes of their own (the ``AUTH``
        route of ``JWT_SECRET``): the application's router is never changed by serving it.
        """
        other: Router[D] = Router(
            validator=self._validator_choice,
            validate_outbound=self.validate_outbound,
            topic_policy=self.topic_policy,
            max_inflight_rpcs=self.max_inflight_rpcs,
            max_inflight_bytes=self.max_inflight_bytes,
            send_queue=self.send_queue,
        )
        other.routes = dict(self.routes)
        other.middleware = list(self.middleware)
        other.open_hooks = list(self.open_hooks)
        other.close_hooks = list(self.close_hooks)
        other.error_hooks = list(self.error_hooks)
        other.history = list(self.history)
        other.presence_patterns = list(self.presence_patterns)
        other.subscribe_patterns = list(self.subscribe_patterns)
        other.emitted = dict(self.emitted)
        other.emitted_topics = dict(self.emitted_topics)
        return other

    # -- the runtime serving this router ----------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        """The runtime serving this router: ``serve()``'s, a ``Server``'s, an ``asgi_app``'s,
        or the one ``TestClient`` starts. Raises :class:`UsageError` before any serves it (the
        router is only a declaration until then: nothing could receive a publish)."""
        runtime = self._runtime
        if runtime is None:
            raise UsageError(
                "this router is not served yet: start serve(), a Server, an asgi_app or a TestClient "
                "before publishing or asking for presence"
            )
        return runtime

    @property
    def served(self) -> bool:
        """Whether a runtime has been attached (see :attr:`runtime`)."""
        return self._runtime is not None

    def attach(self, runtime: Runtime) -> None:
        """Make ``runtime`` the one serving this router (its verbs delegate to it).

        Raises :class:`UsageError` when another runtime is serving it right now: two servers
        of one router in one process would each hold half of its connections, and
        ``router.publish`` could reach only one half.
        """
        current = self._runtime
        if current is not None and current is not runtime and current.serving:
            raise UsageError(
                f"this router is already served by {current!r}; serve a router once per process (mount the same "
                "asgi_app where it is needed, or give each server its own Router)"
            )
        self._runtime = runtime

    @property
    def hub(self) -> Hub:
        """This process's connections and topics, as the serving runtime keeps them."""
        return self.runtime.hub

    @property
    def dispatcher(self) -> Dispatcher:
        """The serving runtime's compiled pipeline."""
        return self.runtime.dispatcher

    # -- runtime verbs (delegated to the serving runtime) ---------------------------------

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
        """Publish to every subscriber of ``topic``, from anywhere (handlers, tasks, HTTP).

        The frame is serialised once. Deliveries carry no ``meta`` unless ``meta`` is given.
        ``exclude`` is a client id that should not receive it. ``overflow`` decides, for this
        message, what a subscriber's full send queue does (``"drop-oldest"`` suits
        ticker-like data; default: the connection's policy).
        """
        name = self.topic_policy.check_name(topic)  # a bad name is refused before anything else
        await self.runtime.publish(name, schema, payload, meta=meta, exclude=exclude, overflow=overflow)

    # -- history, presence, users ----------------------------------------------------------

    def enable_history(self, pattern: str, *, max_len: int = 1000, ttl_s: float = 600.0) -> HistoryPolicy:
        """Keep history for topics matching ``pattern`` (``fnmatch``: ``"room:*"``).

        Deliveries on those topics carry ``meta.offset`` and ``meta.epoch``; a client that
        re-subscribes with them gets what it missed (see :meth:`Context.subscribe`).
        """
        if max_len < 1 or ttl_s <= 0:
            raise UsageError("enable_history needs max_len >= 1 and ttl_s > 0")
        policy = HistoryPolicy(pattern, max_len, ttl_s)
        self.history.append(policy)
        self._history_cache.clear()
        return policy

    def history_for(self, topic: str) -> HistoryPolicy | None:
        """The history policy of ``topic`` (the first matching pattern), or None."""
        if not self.history:
            return None
        cache = self._history_cache
        try:
            return cache[topic]
        except KeyError:
            pass
        found = next((p for p in self.history if p.matches(topic)), None)
        if len(cache) >= 10_000:
            cache.clear()  # bounded: topic names come from clients
        cache[topic] = found
        return found

    def enable_presence_events(self, pattern: str) -> None:
        """Announce joins and leaves on topics matching ``pattern`` to their subscribers.

        Each is a ``$ws:presence`` frame with payload ``{topic, event: "join"|"leave",
        clientId, userId, data}``. An instance that dies announces nothing; its members
        vanish from :meth:`presence` when their TTL runs out.
        """
        self.presence_patterns.append(pattern)

    def announces(self, topic: str) -> bool:
        """Whether joins and leaves of ``topic`` are announced (:meth:`enable_presence_events`)."""
        return any(topic_matches(topic, p) for p in self.presence_patterns)

    def allow_subscribe(self, pattern: str) -> None:
        """Let clients subscribe themselves (``$ws:subscribe``) to topics matching ``pattern``
        (the same globs as :meth:`enable_history`: ``"feed:*"``).

        Without any, every client subscription is refused ``PERMISSION_DENIED``: a topic is
        private to the server's handlers until the application says otherwise. Each subscribe
        to an allowed topic is still checked by the topic policy (name, per-connection limit,
        ``authorize(ctx, topic, "subscribe")``). Raises :class:`UsageError` for a pattern that
        is not a non-empty string.
        """
        if not isinstance(pattern, str) or not pattern:
            raise UsageError(f"allow_subscribe() takes a glob pattern such as 'feed:*', got {pattern!r}")
        if pattern not in self.subscribe_patterns:
            self.subscribe_patterns.append(pattern)

    def allows_subscribe(self, topic: str) -> bool:
        """Whether clients may subscribe themselves to ``topic`` (:meth:`allow_subscribe`)."""
        return any(topic_matches(topic, p) for p in self.subscribe_patterns)

    async def presence(self, topic: str) -> list[Member]:
        """Who is subscribed to ``topic`` on every instance (``client_id``, ``user_id``, ``data``)."""
        return await self.runtime.presence(topic)

    async def send_to_user(
        self, user_id: str, schema: MessageSchema[Any], payload: Any = None, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Send a message to every connection of ``user_id``, on every instance."""
        await self.runtime.send_to_user(user_id, schema, payload, meta=meta)

    async def disconnect_user(self, user_id: str, code: int = 4000, reason: str = "") -> None:
        """Close every connection of ``user_id``, on every instance."""
        await self.runtime.disconnect_user(user_id, code, reason)

    async def ban_user(self, user_id: str, ttl_s: float | None = None, *, disconnect: bool = True) -> None:
        """Refuse ``user_id``'s new connections everywhere and (by default) close the open ones."""
        await self.runtime.ban_user(user_id, ttl_s, disconnect=disconnect)

    async def unban_user(self, user_id: str) -> None:
        """Let ``user_id`` connect again."""
        await self.runtime.unban_user(user_id)

    def __repr__(self) -> str:
        return f"<Router routes={sorted(self.routes)}>"
