"""The router: message types to typed handlers, middleware, lifecycle hooks, composition.

A router is a declaration until it is first used: routes, middleware and hooks can be added
and other routers included; the first message (or ``dispatcher`` access) compiles everything
into one decoder and one pipeline per route. Mistakes are reported when they are made
(:class:`~wskit.errors.UsageError` at registration), not when the first client hits them.
"""

from __future__ import annotations

import fnmatch
import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from wskit.connection import OverflowPolicy, QueueLimits
from wskit.context import Context
from wskit.errors import CloseCode, UsageError
from wskit.hub import Hub
from wskit.protocol import dumps, frame, type_prefix
from wskit.pubsub.broker import HistoryPolicy, Member, Publication
from wskit.schema.declarations import MessageSchema, RpcSchema
from wskit.schema.registry import select_validator
from wskit.schema.validator import PayloadEncoder, Validator
from wskit.topics import TopicPolicy

if TYPE_CHECKING:
    from wskit.dispatch import Dispatcher

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
        raise UsageError(
            f"handler {handler.__qualname__} is annotated Context[{getattr(declared, '__name__', declared)}] "
            f"but {schema.type!r} carries {getattr(expected, '__name__', expected)}"
        )
    if annotation is not Context and not (isinstance(annotation, type) and issubclass(annotation, Context)):
        raise UsageError(
            f"handler {handler.__qualname__}: first parameter should be annotated Context[...], got {annotation!r}"
        )


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
        self._hub: Hub | None = None
        self._dispatcher: Dispatcher | None = None
        self._validator: Validator | None = None
        self._encoders: dict[MessageSchema[Any], tuple[bytes, PayloadEncoder | None]] = {}
        self.history: list[HistoryPolicy] = []
        self.presence_patterns: list[str] = []
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
        self.routes[route.type] = route
        self._changed()

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
        for route in other.routes.values():
            self.routes[route.type] = Route(
                route.schema, route.handler, route.middleware, route.rpc, tuple(other.middleware) + route.inherited
            )
        self.history.extend(other.history)
        for pattern in other.presence_patterns:
            self.enable_presence_events(pattern)
        self._history_cache.clear()
        self.open_hooks.extend(other.open_hooks)
        self.close_hooks.extend(other.close_hooks)
        self.error_hooks.extend(other.error_hooks)
        self._changed()
        return self

    def _changed(self) -> None:
        self._dispatcher = None
        self._validator = None
        self._encoders.clear()

    # -- compiled state --------------------------------------------------------------------

    @property
    def validator(self) -> Validator:
        """The schema backend (chosen on first use when not given)."""
        if self._validator is None:
            models: list[type | None] = [r.schema.payload_model for r in self.routes.values()]
            models += [r.rpc.response.payload_model for r in self.routes.values() if r.rpc is not None]
            self._validator = select_validator(self._validator_choice, [m for m in models if m is not None])
        return self._validator

    @property
    def dispatcher(self) -> Dispatcher:
        """The compiled router (built on first use, rebuilt after changes)."""
        if self._dispatcher is None:
            from wskit.dispatch import Dispatcher

            self._dispatcher = Dispatcher(self)
        return self._dispatcher

    @property
    def hub(self) -> Hub:
        """This process's connections and topics (created on first use, memory broker)."""
        if self._hub is None:
            self._hub = Hub()
        return self._hub

    def encoder_for(self, schema: MessageSchema[Any]) -> tuple[bytes, PayloadEncoder | None]:
        """The pre-encoded type prefix and payload encoder of an outbound message type."""
        cached = self._encoders.get(schema)  # declarations hash by identity
        if cached is None:
            if not isinstance(schema, MessageSchema):
                raise UsageError(f"expected a message(...) declaration, got {schema!r}")
            validator = self.validator
            model = schema.payload_model
            if model is not None and not validator.accepts(model):
                validator = select_validator(None, [model])
            cached = (type_prefix(schema.type), validator.encoder(schema, validate=self.validate_outbound))
            self._encoders[schema] = cached
        return cached

    def encode(self, schema: MessageSchema[Any], payload: Any, *, meta: bytes | None) -> bytes:
        """One outbound frame: validated (unless turned off) and serialised by the backend."""
        prefix, encoder = self.encoder_for(schema)
        if encoder is None:
            if payload is not None and payload != {}:
                raise UsageError(f"message {schema.type!r} is declared without payload, but one was given")
            return frame(prefix, meta, None)
        if payload is None:
            raise UsageError(f"message {schema.type!r} needs a payload")
        return frame(prefix, meta, encoder(payload))

    def encode_parts(self, schema: MessageSchema[Any], payload: Any) -> tuple[bytes, bytes]:
        """A frame in two halves around where ``meta`` goes: ``(b'{"type":"X"', b',"payload":...}')``."""
        prefix = self.encoder_for(schema)[0]
        return prefix, self.encode(schema, payload, meta=None)[len(prefix) :]

    # -- publishing ------------------------------------------------------------------------

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
        name = self.topic_policy.check_name(topic)
        head, tail = self.encode_parts(schema, payload)
        publication = Publication(name, head, tail, dumps(dict(meta)) if meta else None, exclude)
        if overflow is not None:
            publication.overflow = OverflowPolicy(overflow)
        await self.hub.publish(publication, self.history_for(name))

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
        patterns = tuple(self.presence_patterns)
        self.hub.announces = lambda topic: any(fnmatch.fnmatchcase(topic, p) for p in patterns)

    async def presence(self, topic: str) -> list[Member]:
        """Who is subscribed to ``topic`` on every instance (``client_id``, ``user_id``, ``data``)."""
        return await self.hub.broker.presence(self.topic_policy.check_name(topic))

    async def send_to_user(
        self, user_id: str, schema: MessageSchema[Any], payload: Any = None, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Send a message to every connection of ``user_id``, on every instance."""
        data = self.encode(schema, payload, meta=dumps(dict(meta)) if meta else b"{}")
        await self._ensure_started()
        await self.hub.broker.send_to_user(str(user_id), data)

    async def disconnect_user(self, user_id: str, code: int = 4000, reason: str = "") -> None:
        """Close every connection of ``user_id``, on every instance."""
        await self._ensure_started()
        await self.hub.broker.disconnect_user(str(user_id), int(code), reason)

    async def ban_user(self, user_id: str, ttl_s: float | None = None, *, disconnect: bool = True) -> None:
        """Refuse ``user_id``'s new connections everywhere and (by default) close the open ones."""
        await self._ensure_started()
        await self.hub.broker.ban(str(user_id), ttl_s)
        if disconnect:
            await self.hub.broker.disconnect_user(str(user_id), int(CloseCode.POLICY_VIOLATION), "banned")

    async def unban_user(self, user_id: str) -> None:
        await self._ensure_started()
        await self.hub.broker.unban(str(user_id))

    async def _ensure_started(self) -> None:
        await self.hub.start()

    def __repr__(self) -> str:
        return f"<Router routes={sorted(self.routes)}>"
