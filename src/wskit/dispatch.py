"""The per-message pipeline and the connection lifecycle, compiled from a router.

``receive`` is the hot path: one decode, a route lookup, a :class:`Context`, the middleware
chain and the handler. Events run inline in the connection's read loop, so one
connection's events are handled in the order they arrived (a slow handler delays only its
own connection). RPCs run as tasks, so a client can cancel them and give them deadlines;
how many may run at once per connection is bounded, and reading pauses at the bound.

Every failure has exactly one answer on the wire (PROTOCOL.md, errors table); nothing a
handler raises reaches the transport.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, cast

from wskit.connection import Connection
from wskit.context import Context, error_frame
from wskit.errors import CloseCode, ErrorCode, UsageError, WsKitError
from wskit.inflight import RpcCall, inflight_bytes, set_deadline
from wskit.protocol import CANCEL_TYPE, HEARTBEAT_ACK_TYPE, HEARTBEAT_TYPE, heartbeat_ack, now_ms
from wskit.schema.validator import DecodeFailure, OutboundValidationError
from wskit.stepping import resume
from wskit.subscriptions import HANDLERS as SUBSCRIPTION_HANDLERS
from wskit.subscriptions import sanitize_meta
from wskit.telemetry import RouteStats

if TYPE_CHECKING:
    from wskit.router import Middleware, Route
    from wskit.runtime import Runtime

__all__ = ["REFUSED_TYPE", "Dispatcher"]

log = logging.getLogger("wskit.dispatch")

#: handlers are checked to be coroutine functions at registration, so a pipeline can be stepped
Pipeline = Callable[[Context[Any, Any]], Coroutine[Any, Any, None]]

_INTERNAL_TYPES = (HEARTBEAT_TYPE, CANCEL_TYPE, *SUBSCRIPTION_HANDLERS)


def _compose(middleware: tuple[Middleware, ...], handler: Callable[[Context[Any, Any]], Awaitable[None]]) -> Pipeline:
    if not middleware:
        return cast(Pipeline, handler)  # registration checked it is an async function
    last = len(middleware)

    async def run(ctx: Context[Any, Any]) -> None:
        async def step(index: int) -> None:
            if index == last:
                await handler(ctx)
                return
            called = False

            async def call_next() -> None:
                nonlocal called
                if called:
                    raise UsageError(f"middleware {middleware[index].__qualname__} called call_next() twice")
                called = True
                await step(index + 1)

            await middleware[index](ctx, call_next)

        await step(0)

    return run


#: ``ctx.type`` that frame guards see for a frame refused before routing
REFUSED_TYPE = "$ws:refused"


async def _send_refusal(ctx: Context[Any, Any]) -> None:
    if ctx.connection.send_nowait(ctx.payload):
        telemetry = ctx.runtime.dispatcher.telemetry
        if telemetry is not None and ctx.error_code is not None:
            telemetry.error_sent(ctx.error_code, ctx.correlation_id is not None)


class _Compiled:
    __slots__ = ("pipeline", "route", "rpc", "stats")

    def __init__(self, route: Route | None, pipeline: Pipeline, stats: RouteStats | None) -> None:
        #: None for the framework's own routes ($ws:subscribe, $ws:unsubscribe)
        self.route = route
        self.rpc = route.rpc if route is not None else None
        self.pipeline = pipeline
        #: this type's counters (None with METRICS off)
        self.stats = stats


class Dispatcher:
    """A router compiled for serving: decoder, pipelines, lifecycle."""

    def __init__(
        self, runtime: Runtime, *, guards: Sequence[Middleware] = (), frame_guards: Sequence[Middleware] = ()
    ) -> None:
        """Compile what ``runtime`` serves (``runtime.routes``). ``guards`` run before the
        application's middleware on every routed message; ``frame_guards`` (rate limits) also
        run on frames refused before routing (unparseable, unknown or invalid), so junk costs
        a client the same budget as messages do."""
        self.runtime = runtime
        router = runtime.routes
        self.router = router
        self.max_inflight_rpcs = router.max_inflight_rpcs
        self.max_inflight_bytes = router.max_inflight_bytes
        #: set during a graceful shutdown: new messages are answered UNAVAILABLE
        self.draining = False
        self.retry_after_ms = 1000
        #: event handlers running right now (RPCs are counted on their connections)
        self.running = 0
        self._next_decode_log = 0.0
        telemetry = runtime.telemetry
        #: None with METRICS off: nothing is counted or timed
        self.telemetry = telemetry if runtime.settings.metrics else None
        counted = self.telemetry is not None
        self.decoder = router.validator.decoder(
            [route.schema for route in router.routes.values()], internal=_INTERNAL_TYPES
        )
        # the server's guards (rate limits) run before the application's middleware
        globals_ = tuple(guards) + tuple(router.middleware)
        self.routes: dict[str, _Compiled] = {
            name: _Compiled(
                route,
                self._traced(name, route, _compose(globals_ + route.inherited + route.middleware, route.handler)),
                telemetry.routes.get(name) if counted else None,
            )
            for name, route in router.routes.items()
        }
        # client subscriptions share the routes' table (no extra lookup for other messages)
        # and pass the same guards and global middleware, as events: in the read loop, in order
        for name, handler in SUBSCRIPTION_HANDLERS.items():
            self.routes[name] = _Compiled(
                None, _compose((sanitize_meta, *globals_), handler), telemetry.routes.get(name) if counted else None
            )
        self._refusal: Pipeline | None = _compose(tuple(frame_guards), _send_refusal) if frame_guards else None

    def _traced(self, name: str, route: Route, pipeline: Pipeline) -> Pipeline:
        """``pipeline`` inside a span per message when ``TRACING`` is on (see wskit.tracing)."""
        if not self.runtime.settings.tracing:
            return pipeline
        from wskit.tracing import traced

        return traced(pipeline, name, rpc=route.rpc is not None, tracer_provider=self.runtime.tracer_provider)

    # -- the hot path ----------------------------------------------------------------------

    def receive(self, conn: Connection, data: bytes | str) -> Awaitable[bool | None] | None:
        """Handle one inbound frame. Returns an awaitable the read loop must await, or None.

        When that awaitable returns True, another task has taken over reading this connection
        (see ``Connection.spawn_reader``) and the caller's read loop must stop.
        """
        try:
            type_name, meta, payload = self.decoder.decode(data)
        except DecodeFailure as failure:
            log.debug("client %s: rejected frame: %s", conn.client_id, failure.error)
            telemetry = self.telemetry
            if telemetry is not None:
                telemetry.received_other += 1
            answer = error_frame(failure.error.to_payload(), failure.correlation_id)
            if self._refusal is None:
                if conn.send_nowait(answer) and telemetry is not None:
                    telemetry.error_sent(failure.error.code, failure.correlation_id is not None)
                return None
            # counted when the frame guards let it out (they may answer RESOURCE_EXHAUSTED instead)
            return self._refuse(conn, answer, failure.correlation_id, failure.error.code)
        except Exception:  # a backend bug must cost one answer, never the connection
            now = monotonic()
            if now >= self._next_decode_log:  # at most one traceback a second: input is hostile
                self._next_decode_log = now + 1.0
                log.exception("client %s: decoding a frame failed unexpectedly", conn.client_id)
            if conn.send_nowait(error_frame(WsKitError(ErrorCode.INTERNAL).to_payload(), None)) and self.telemetry:
                self.telemetry.received_other += 1
                self.telemetry.error_sent(ErrorCode.INTERNAL.value, False)
            return None
        conn.received += 1
        compiled = self.routes.get(type_name)
        if compiled is None:
            stats = self.telemetry.routes.get(type_name) if self.telemetry is not None else None
            if stats is not None:
                stats.received += 1
            self._internal(conn, type_name, meta)
            return None
        stats = compiled.stats
        if stats is not None:
            stats.received += 1
        conn.last_activity = monotonic()
        ctx: Context[Any, Any] = Context(self.runtime, conn, type_name, payload, meta, now_ms(), rpc=compiled.rpc)
        if self.draining:
            if not isinstance(ctx.correlation_id, str):
                ctx.correlation_id = None  # a $ws: frame's meta is not checked by a schema
            ctx.fail(WsKitError(ErrorCode.UNAVAILABLE, "Server shutting down", retry_after_ms=self.retry_after_ms))
            return None
        if compiled.rpc is None:
            return self._run_event(compiled, ctx)
        return self._start_rpc(compiled, ctx, len(data))

    async def _refuse(self, conn: Connection, answer: bytes, correlation_id: str | None, code: str) -> None:
        """Send ``answer`` to a refused frame through the frame guards (which may answer
        ``RESOURCE_EXHAUSTED`` instead: the client is over its budget)."""
        assert self._refusal is not None
        meta = {"correlationId": correlation_id} if correlation_id is not None else {}
        ctx: Context[Any, Any] = Context(self.runtime, conn, REFUSED_TYPE, answer, meta, now_ms())
        ctx.error_code = code  # what _send_refusal counts once the answer goes out
        try:
            await self._refusal(ctx)
        except WsKitError as exc:
            ctx.fail(exc)
        except Exception as exc:
            log.error("a frame guard raised for client %s", conn.client_id, exc_info=exc)
            conn.send_nowait(answer)

    def _internal(self, conn: Connection, type_name: str, meta: dict[str, Any]) -> None:
        telemetry = self.telemetry
        if type_name == HEARTBEAT_TYPE:
            if conn.send_nowait(heartbeat_ack()) and telemetry is not None:
                telemetry.sent[HEARTBEAT_ACK_TYPE] += 1
            return
        # $ws:rpc-cancel
        correlation_id = meta.get("correlationId")
        if not isinstance(correlation_id, str):
            error = WsKitError(ErrorCode.INVALID_ARGUMENT, "rpc-cancel needs meta.correlationId (string)")
            if conn.send_nowait(error_frame(error.to_payload(), None)) and telemetry is not None:
                telemetry.error_sent(error.code, False)
            return
        call = conn.rpcs.get(correlation_id)
        if call is not None:
            call.abort(WsKitError(ErrorCode.CANCELLED, "Cancelled by the client"))

    def _run_event(self, compiled: _Compiled, ctx: Context[Any, Any]) -> Awaitable[None] | None:
        """Step the event's pipeline now. None when it finished; else the rest of it, which
        the read loop awaits (so the connection's next frame waits: events stay in order).

        Knowing at once whether the handler had to wait lets the transport write the answers
        of handlers that did not right away (see ``AiohttpSocket.settle``).
        """
        self.running += 1
        stats = compiled.stats
        started = perf_counter() if stats is not None else 0.0
        coro = compiled.pipeline(ctx)
        try:
            yielded = coro.send(None)
        except StopIteration:
            self.running -= 1
            if stats is not None:
                stats.duration.observe(perf_counter() - started)
            return None
        except asyncio.CancelledError as exc:
            self.running -= 1
            return self._cancelled(ctx, exc)
        except Exception as exc:  # noqa: BLE001 - every failure gets its wire answer
            self.running -= 1
            if stats is not None:
                stats.duration.observe(perf_counter() - started)
            return self._failed(ctx, exc)
        return self._finish_event(coro, yielded, ctx, stats, started)

    async def _finish_event(
        self,
        coro: Coroutine[Any, Any, None],
        yielded: Any,
        ctx: Context[Any, Any],
        stats: RouteStats | None,
        started: float,
    ) -> None:
        try:
            await resume(coro, yielded)
        except asyncio.CancelledError as exc:
            await self._cancelled(ctx, exc)
        except Exception as exc:  # noqa: BLE001 - every failure gets its wire answer
            await self._failed(ctx, exc)
        finally:
            self.running -= 1
            if stats is not None:
                stats.duration.observe(perf_counter() - started)

    async def _cancelled(self, ctx: Context[Any, Any], exc: asyncio.CancelledError) -> None:
        """A ``CancelledError`` out of a handler: passed on when its task is being cancelled
        (shutdown, connection gone), else a handler bug (it awaited something that another
        task cancelled) answered like any other exception, so it cannot end the connection."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise exc
        await self._failed(ctx, RuntimeError(f"handler raised CancelledError without being cancelled: {exc!r}"))

    def busy(self) -> bool:
        """Whether any handler or RPC is still running (graceful shutdown waits for this)."""
        return self.running > 0 or any(conn.rpcs for conn in self.runtime.hub.connections.values())

    def abort_rpcs(self, error: WsKitError) -> int:
        """Answer every RPC still in flight with ``error`` and cancel its handler; how many.

        For a shutdown whose grace period is over: each request still gets its one terminal
        answer (PROTOCOL.md) before its connection closes, instead of none.
        """
        aborted = 0
        for conn in list(self.runtime.hub.connections.values()):
            for call in list(conn.rpcs.values()):
                if not (call.ctx.answered or call.finished or call.task.done()):
                    call.abort(error)
                    aborted += 1
        return aborted

    def _has_room(self, conn: Connection) -> bool:
        """Whether another RPC may run on ``conn`` (both in-flight bounds have room)."""
        rpcs = conn.rpcs
        return len(rpcs) < self.max_inflight_rpcs and (not rpcs or inflight_bytes(rpcs) < self.max_inflight_bytes)

    def _start_rpc(self, compiled: _Compiled, ctx: Context[Any, Any], size: int) -> Awaitable[bool | None] | None:
        conn = ctx.connection
        correlation_id = ctx.correlation_id
        if correlation_id is not None and correlation_id in conn.rpcs:
            ctx.rpc = None  # not a call of its own: the answer must not end the one in flight
            ctx.fail(WsKitError(ErrorCode.INVALID_ARGUMENT, "correlationId is already used by an RPC in flight"))
            return None
        set_deadline(ctx)
        if conn.spawn_reader is not None:
            # step the handler here, in the reading task: most answer without waiting and
            # then cost neither a task nor a coroutine for the read loop to await
            coro = self._run_rpc(compiled, ctx)
            try:
                yielded = coro.send(None)
            except StopIteration:
                return None
            return self._hand_off(coro, yielded, ctx, size)
        if not self._has_room(conn):
            return self._start_when_free(compiled, ctx, size)
        RpcCall.start(self._run_rpc(compiled, ctx), ctx, size)
        return None

    async def _start_when_free(self, compiled: _Compiled, ctx: Context[Any, Any], size: int) -> None:
        conn = ctx.connection
        while not self._has_room(conn) and not conn.closed:
            await asyncio.wait([call.task for call in conn.rpcs.values()], return_when=asyncio.FIRST_COMPLETED)
        if conn.closed:
            return
        if self.draining:  # a shutdown began while it waited: no new work, but an answer
            ctx.fail(WsKitError(ErrorCode.UNAVAILABLE, "Server shutting down", retry_after_ms=self.retry_after_ms))
            return
        RpcCall.start(self._run_rpc(compiled, ctx), ctx, size)

    async def _hand_off(self, coro: Coroutine[Any, Any, None], yielded: Any, ctx: Context[Any, Any], size: int) -> bool:
        """Finish an RPC whose handler had to wait in this (the reading) task, and hand reading on.

        The handler keeps the task it started in (so ``asyncio.timeout`` and cancellation
        inside it behave as in any task) while a new task goes on reading the connection.
        Returns True: reading was handed on.
        """
        conn = ctx.connection
        task = asyncio.current_task()
        assert task is not None and conn.spawn_reader is not None
        call = RpcCall.adopt(ctx, task, size)
        if self._has_room(conn):
            conn.spawn_reader()
        else:
            conn.reader_waiting = True  # at a bound: reading resumes when an RPC finishes
        try:
            await resume(coro, yielded)
        finally:
            call.finish()
            spawn = conn.spawn_reader  # None once the host released the connection
            if conn.reader_waiting and not conn.closed and spawn is not None and self._has_room(conn):
                conn.reader_waiting = False
                spawn()
        return True

    async def _run_rpc(self, compiled: _Compiled, ctx: Context[Any, Any]) -> None:
        stats = compiled.stats
        if stats is None:
            await self._rpc_pipeline(compiled, ctx)
            return
        started = perf_counter()
        try:
            await self._rpc_pipeline(compiled, ctx)
        finally:
            stats.duration.observe(perf_counter() - started)

    async def _rpc_pipeline(self, compiled: _Compiled, ctx: Context[Any, Any]) -> None:
        try:
            await compiled.pipeline(ctx)
        except asyncio.CancelledError as exc:
            if ctx.cancelled:
                return  # cancelled by the client or the deadline: already answered
            await self._cancelled(ctx, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every failure gets its wire answer
            await self._failed(ctx, exc)
            return
        if not ctx.answered and not ctx.connection.closed:
            log.warning("RPC handler for %s returned without reply() or error()", ctx.type)
            ctx.fail(WsKitError(ErrorCode.INTERNAL, "The handler finished without an answer"))

    async def _failed(self, ctx: Context[Any, Any], exc: Exception) -> None:
        if isinstance(exc, WsKitError):
            log.debug("%s from client %s answered with %s", ctx.type, ctx.client_id, exc.code)
            if not ctx.connection.closed:
                try:
                    ctx.fail(exc)
                except Exception as bad:
                    log.error("handler for %s raised a WsKitError that cannot be sent", ctx.type, exc_info=bad)
                    ctx.fail(WsKitError(ErrorCode.INTERNAL))
            return
        if isinstance(exc, OutboundValidationError):
            log.error("handler for %s (client %s): %s", ctx.type, ctx.client_id, exc)
            await self.report(ctx, exc)
            # nothing goes to the peer for the bad message; an RPC caller learns it failed
            if ctx.rpc is not None and not ctx.connection.closed:
                ctx.fail(WsKitError(ErrorCode.INTERNAL))
            return
        self.runtime.telemetry.handler_error(ctx.type, ctx.client_id, ErrorCode.INTERNAL.value, exc)
        await self.report(ctx, exc)
        if not ctx.connection.closed:
            ctx.fail(WsKitError(ErrorCode.INTERNAL))

    async def report(self, ctx: Context[Any, Any], exc: BaseException) -> None:
        """Give ``exc`` to the router's ``on_error`` hooks (their own failures are logged)."""
        for hook in self.router.error_hooks:
            try:
                result = hook(ctx, exc)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_error hook %r raised", hook)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, conn: Connection) -> bool:
        """Register ``conn`` and run ``on_open`` hooks. False when a hook refused or closed it."""
        telemetry = conn.telemetry = self.runtime.telemetry
        telemetry.connected(conn.client_id, conn.user_id, conn.client_ip)
        self.runtime.hub.add(conn)
        if self.draining:
            # admitted just before a shutdown began (its upgrade was being answered): it missed
            # the notice every other connection got
            self.runtime.tell_draining(conn)
        if not self.router.open_hooks:
            return True
        ctx: Context[None] = Context(self.runtime, conn, "$ws:open", None, {}, now_ms())
        for hook in self.router.open_hooks:
            try:
                result = hook(ctx)
                if inspect.isawaitable(result):
                    await result
            except WsKitError as exc:
                ctx.fail(exc)
                await conn.close(CloseCode.POLICY_VIOLATION, exc.message)  # clipped by the transport
                return False
            except Exception as exc:
                log.error("on_open hook failed for client %s", conn.client_id, exc_info=exc)
                await self.report(ctx, exc)
                await conn.close(CloseCode.INTERNAL_ERROR, "internal error")
                return False
            if conn.close_code is not None:
                return False
        return True

    async def disconnect(self, conn: Connection, code: int | None, reason: str = "") -> None:
        """Forget a closed connection: cancel its RPCs, leave its topics, run ``on_close``."""
        if conn.closed:
            return
        conn.closed = True
        if conn.close_code is None:
            conn.close_code = code if code is not None else CloseCode.NORMAL
            conn.close_reason = reason
        for call in list(conn.rpcs.values()):
            call.abandon()
        if conn.telemetry is not None:
            lived = monotonic() - conn.opened_at if conn.opened_at else 0.0
            conn.telemetry.disconnected(
                conn.client_id, conn.user_id, conn.close_code, conn.close_reason, lived, conn.received, conn.sent
            )
        try:
            await self._run_close_hooks(conn)
        finally:
            # after the hooks, so they still see ctx.topics (e.g. to announce a leave)
            await self.runtime.hub.remove(conn)

    async def _run_close_hooks(self, conn: Connection) -> None:
        if not self.router.close_hooks:
            return
        ctx: Context[None] = Context(self.runtime, conn, "$ws:close", None, {}, now_ms())
        ctx.close_code, ctx.close_reason = conn.close_code, conn.close_reason
        for hook in self.router.close_hooks:
            try:
                result = hook(ctx)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.error("on_close hook failed for client %s", conn.client_id, exc_info=exc)
                await self.report(ctx, exc)
