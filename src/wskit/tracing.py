"""OpenTelemetry spans per handled message and RPC (``TRACING=1``, extra ``wskit[otel]``).

With ``TRACING`` on, the dispatcher wraps each route's pipeline (middleware and handler) with
:func:`traced` when it is built. The span covers what the application runs for one message,
not decoding or the wire answer to a failure: those are the dispatcher's, and a span that
began before routing would have no type to be named after.

Parenting is the point of care. A connection's messages are handled in one reading task
(events stepped inline, RPC handlers that wait keeping the task while a new one reads on), so
the span current in that task when a message arrives may be a previous message's. Every span
therefore starts from an explicit parent: the W3C ``traceparent``/``tracestate`` the client
put in ``meta``, or an empty context (a new root), never the ambient current span. It is made
current only while the pipeline runs, so the application's own spans nest under it, and the
previous context is restored when the pipeline ends, however it ends.

docs/tracing.md has span names, attributes and the measured cost.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from wskit.context import Context
from wskit.errors import ConfigError, ErrorCode, WsKitError

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span, TracerProvider

__all__ = [
    "ATTR_CLIENT_ID",
    "ATTR_CORRELATION_ID",
    "ATTR_OUTCOME",
    "ATTR_RPC",
    "ATTR_TYPE",
    "ATTR_USER_ID",
    "MAX_TRACESTATE_MEMBERS",
    "SERVER_FAULTS",
    "span_name",
    "traced",
    "valid_tracestate",
]

Pipeline = Callable[[Context[Any, Any]], Coroutine[Any, Any, None]]

#: the message's ``type``
ATTR_TYPE = "wskit.message.type"
#: the server-assigned client id (``ctx.client_id``)
ATTR_CLIENT_ID = "wskit.client_id"
#: the connection's ``data["user_id"]``, when it has one (as a string)
ATTR_USER_ID = "wskit.user_id"
#: True for an RPC, False for an event
ATTR_RPC = "wskit.rpc"
#: an RPC's ``meta.correlationId``
ATTR_CORRELATION_ID = "wskit.correlation_id"
#: ``"ok"``, the code of the ``WsKitError`` the pipeline raised, ``"INTERNAL"`` for any other
#: exception, ``"CANCELLED"``/``"DEADLINE_EXCEEDED"`` when it was cancelled
ATTR_OUTCOME = "wskit.outcome"

#: Codes that mean the server failed, not the client: the span's status is ERROR for these
#: (as OpenTelemetry's gRPC conventions mark server spans), unset for the others, whose
#: failure is the client's to fix (INVALID_ARGUMENT, NOT_FOUND, application codes...).
SERVER_FAULTS = frozenset(
    {ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE, ErrorCode.DEADLINE_EXCEEDED, ErrorCode.UNIMPLEMENTED}
)

#: A ``tracestate`` holds at most this many list members (W3C Trace Context).
MAX_TRACESTATE_MEMBERS = 32

# W3C Trace Context, "tracestate" grammar: a key is lowercase, optionally tenant@system; a
# value is printable ASCII without "," and "=", not ending in a space.
_KEY_CHAR = r"[a-z0-9_\-*/]"
_MEMBER = re.compile(
    rf"(?:[a-z]{_KEY_CHAR}{{0,255}}|[a-z0-9]{_KEY_CHAR}{{0,240}}@[a-z]{_KEY_CHAR}{{0,13}})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)


def span_name(type_name: str) -> str:
    """``"wskit TYPE"``: the span name of a message of ``type_name``.

    Only routed types get spans, so names come from the application's declarations, a set
    as small as OpenTelemetry asks span names to be; the prefix tells them apart from the
    HTTP and database spans of the same trace, as an RPC system's name does in its spans.
    """
    return f"wskit {type_name}"


def valid_tracestate(value: str) -> bool:
    """Whether ``value`` is a well-formed ``tracestate`` (W3C Trace Context).

    OpenTelemetry logs a warning for each malformed one it parses: checked first, so a client
    cannot have the server write a log line per message.
    """
    keys: set[str] = set()
    for part in value.split(","):
        member = part.strip(" \t")
        if not member:
            continue  # empty list members are allowed
        if _MEMBER.fullmatch(member) is None:
            return False
        key = member.partition("=")[0]
        if key in keys or len(keys) == MAX_TRACESTATE_MEMBERS:
            return False
        keys.add(key)
    return True


def traced(pipeline: Pipeline, type_name: str, *, rpc: bool, tracer_provider: TracerProvider | None = None) -> Pipeline:
    """``pipeline`` run inside a span named :func:`span_name` (parented to ``meta.traceparent``).

    The tracer is taken now, from ``tracer_provider`` or else OpenTelemetry's global one
    (which, until the application configures an SDK, records nothing and costs little). RPCs
    get SERVER spans (the client waits for the answer); events CONSUMER spans (a message
    processed with no answer awaited, OpenTelemetry's kind for that).

    Exceptions, cancellation included, pass through unchanged after being recorded: the
    dispatcher answers them. Raises :class:`ConfigError` when opentelemetry-api is missing.
    """
    try:
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:
        raise ConfigError("TRACING needs opentelemetry-api: pip install 'wskit[otel]'") from exc
    from wskit import __version__

    tracer = trace.get_tracer("wskit", __version__, tracer_provider=tracer_provider)
    start_span = tracer.start_span
    set_span_in_context = trace.set_span_in_context
    attach, detach = otel_context.attach, otel_context.detach
    extract = TraceContextTextMapPropagator().extract
    root = otel_context.Context()  # immutable: every span without a traceparent starts here
    name = span_name(type_name)
    kind = trace.SpanKind.SERVER if rpc else trace.SpanKind.CONSUMER
    error = trace.StatusCode.ERROR

    def parent_of(meta: Mapping[str, Any]) -> OtelContext:
        traceparent = meta.get("traceparent")
        if not isinstance(traceparent, str):
            return root
        tracestate = meta.get("tracestate")
        if isinstance(tracestate, str) and valid_tracestate(tracestate):
            carrier = {"traceparent": traceparent, "tracestate": tracestate}
        else:
            carrier = {"traceparent": traceparent}
        # a malformed traceparent gives ``root`` back: a new trace, and the message is handled
        return extract(carrier, context=root)

    def failed(span: Span, exc: BaseException, outcome: str) -> None:
        span.set_attribute(ATTR_OUTCOME, outcome)
        span.record_exception(exc)
        if outcome in SERVER_FAULTS:
            span.set_status(error, f"{type(exc).__name__}: {exc}")

    def cancelled(span: Span, ctx: Context[Any, Any], exc: asyncio.CancelledError) -> None:
        if ctx.cancelled:  # the client cancelled, the deadline passed, or the connection went
            late = ctx.deadline is not None and asyncio.get_running_loop().time() >= ctx.deadline
            outcome = ErrorCode.DEADLINE_EXCEEDED if late else ErrorCode.CANCELLED
            span.set_attribute(ATTR_OUTCOME, outcome.value)
            if late:
                span.set_status(error, "the RPC's deadline passed")
            return
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # shutdown, or the connection is gone
            span.set_attribute(ATTR_OUTCOME, ErrorCode.CANCELLED.value)
            return
        # a handler bug (it awaited something another task cancelled): the dispatcher answers
        # INTERNAL
        failed(span, exc, ErrorCode.INTERNAL.value)

    async def run(ctx: Context[Any, Any]) -> None:
        parent = parent_of(ctx.meta)
        attributes: dict[str, str | bool] = {ATTR_TYPE: type_name, ATTR_CLIENT_ID: ctx.client_id, ATTR_RPC: rpc}
        user = ctx.connection.data.get("user_id")
        if user is not None:
            attributes[ATTR_USER_ID] = str(user)
        if rpc and ctx.correlation_id is not None:
            attributes[ATTR_CORRELATION_ID] = ctx.correlation_id
        span = start_span(name, parent, kind, attributes)
        token = attach(set_span_in_context(span, parent))
        try:
            await pipeline(ctx)
        except asyncio.CancelledError as exc:
            cancelled(span, ctx, exc)
            raise
        except WsKitError as exc:
            failed(span, exc, str(exc.code))
            raise
        except BaseException as exc:
            failed(span, exc, ErrorCode.INTERNAL.value)
            raise
        else:
            if rpc and not ctx.answered and not ctx.connection.closed:
                # the dispatcher answers INTERNAL for an RPC handler that returned silently
                span.set_attribute(ATTR_OUTCOME, ErrorCode.INTERNAL.value)
                span.set_status(error, "the handler returned without reply() or error()")
            elif ctx.error_code is not None:
                # answered with ctx.error(...) rather than by raising: the same outcome
                span.set_attribute(ATTR_OUTCOME, ctx.error_code)
                if ctx.error_code in SERVER_FAULTS:
                    span.set_status(error, f"answered {ctx.error_code}")
            else:
                span.set_attribute(ATTR_OUTCOME, "ok")
        finally:
            detach(token)
            if user is None and (user := ctx.connection.data.get("user_id")) is not None:
                span.set_attribute(ATTR_USER_ID, str(user))  # signed in by this very message
            span.end()

    return run
