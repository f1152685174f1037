"""The router: registration errors, composition, middleware, hooks, connection data, topics, publish."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, ErrorCode, Router, TopicPolicy, UsageError, WsKitError, message, rpc
from wskit.testing import Message, RpcError, TestClient


class JoinPayload(BaseModel):
    room: str


class SayPayload(BaseModel):
    room: str
    text: str


class UserReq(BaseModel):
    id: str


class User(BaseModel):
    id: str
    name: str


Join = message("JOIN", JoinPayload)
Say = message("SAY", SayPayload)
RoomMsg = message("ROOM_MSG", SayPayload)
Ping = message("PING")
GetUser = rpc("GET_USER", UserReq, "USER", User)


async def drain(client: TestClient) -> list[Message[Any]]:
    """Every frame the server sent until it handled all events sent so far.

    Events of one connection are handled in order, so the answer to a heartbeat sent now comes
    after everything the earlier events produced.
    """
    await client.send_raw(b'{"type":"__heartbeat"}')
    frames: list[Message[Any]] = []
    while True:
        msg = await client.receive()
        if msg.type == "__heartbeat_ack":
            return frames
        frames.append(msg)


async def _noop(ctx: Context[Any]) -> None:
    return None


def joining_router(policy: TopicPolicy | None = None) -> Router[Any]:
    """JOIN subscribes to payload.room; SAY publishes to it (sender included)."""
    router: Router[Any] = Router(topic_policy=policy)

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        await ctx.subscribe(ctx.payload.room)

    @router.on(Say)
    async def say(ctx: Context[SayPayload]) -> None:
        await ctx.publish(ctx.payload.room, RoomMsg, ctx.payload)

    return router


# -- registration errors ----------------------------------------------------------------------


def test_duplicate_type_is_refused() -> None:
    """Registering a second handler for the same type raises UsageError naming the type."""
    router: Router[Any] = Router()
    router.on(Join, _noop)
    with pytest.raises(UsageError, match="JOIN"):
        router.on(Join, _noop)


def test_duplicate_type_across_declarations_is_refused() -> None:
    """Two declarations of one type name (an event and an RPC) cannot both be routed."""
    router: Router[Any] = Router()
    router.rpc(GetUser, _noop)
    with pytest.raises(UsageError, match="GET_USER"):
        router.on(message("GET_USER", UserReq), _noop)


@pytest.mark.parametrize("name", ["__x", "$x", "$ws:rpc-progress", "__heartbeat", "ERROR", "RPC_ERROR"])
def test_reserved_type_names_are_refused_by_message(name: str) -> None:
    """message() refuses reserved type names (``__``/``$`` prefixes and the error frame types)."""
    with pytest.raises(UsageError, match="reserved"):
        message(name)


def test_reserved_response_type_is_refused_by_rpc() -> None:
    """rpc() refuses a reserved response type."""
    with pytest.raises(UsageError, match="reserved"):
        rpc("GET", UserReq, "RPC_ERROR", User)


@pytest.mark.parametrize("name", ["", "has space", "x" * 129])
def test_malformed_type_names_are_refused(name: str) -> None:
    """message() refuses empty, too long and badly formed names."""
    with pytest.raises(UsageError):
        message(name)


def test_payload_model_must_be_a_class() -> None:
    """message() refuses a payload model that is not a class."""
    with pytest.raises(UsageError):
        message("X", {"room": str})  # type: ignore[call-overload]


def test_declared_meta_cannot_shadow_protocol_keys() -> None:
    """message(meta=...) refuses keys the protocol owns (correlationId, clientId, ...)."""
    with pytest.raises(UsageError, match="correlationId"):
        message("X", JoinPayload, meta={"correlationId": str})


def test_rpc_response_type_must_differ_from_request() -> None:
    """rpc() refuses a response type equal to the request type."""
    with pytest.raises(UsageError):
        rpc("SAME", UserReq, "SAME", User)


def test_non_callable_route_middleware_is_refused() -> None:
    """Route middleware that is not callable raises UsageError at registration."""
    router: Router[Any] = Router()
    with pytest.raises(UsageError):
        router.on(Join, _noop, middleware=["require_auth"])  # type: ignore[list-item]


def test_on_refuses_an_rpc_declaration() -> None:
    """router.on(rpc(...)) raises UsageError pointing at router.rpc."""
    router: Router[Any] = Router()
    with pytest.raises(UsageError, match=r"router\.rpc"):
        router.on(GetUser, _noop)  # type: ignore[call-overload]


def test_rpc_refuses_a_message_declaration() -> None:
    """router.rpc(message(...)) raises UsageError."""
    router: Router[Any] = Router()
    with pytest.raises(UsageError):
        router.rpc(Join, _noop)  # type: ignore[call-overload]


def test_sync_handler_is_refused() -> None:
    """A handler that is not ``async def`` raises UsageError at registration."""
    router: Router[Any] = Router()

    def handler(ctx: Context[JoinPayload]) -> None:
        return None

    with pytest.raises(UsageError, match="async"):
        router.on(Join, handler)  # type: ignore[arg-type]


def test_sync_handler_is_refused_by_decorator() -> None:
    """The decorator form refuses a sync handler too."""
    router: Router[Any] = Router()
    with pytest.raises(UsageError, match="async"):

        @router.on(Join)  # type: ignore[arg-type]
        def handler(ctx: Context[JoinPayload]) -> None:
            return None


def test_handler_without_parameters_is_refused() -> None:
    """A handler must take the context: one without parameters raises UsageError."""
    router: Router[Any] = Router()

    async def handler() -> None:
        return None

    with pytest.raises(UsageError):
        router.on(Join, handler)  # type: ignore[arg-type]


def test_mismatched_context_annotation_is_refused() -> None:
    """A handler annotated Context[SayPayload] for JOIN raises a UsageError naming both models and the type."""
    router: Router[Any] = Router()
    with pytest.raises(UsageError) as info:

        @router.on(Join)  # type: ignore[arg-type]
        async def handler(ctx: Context[SayPayload]) -> None:
            return None

    text = str(info.value)
    assert "SayPayload" in text and "JoinPayload" in text and "JOIN" in text


def test_handlers_defined_in_a_function_are_checked_without_its_frame() -> None:
    """A handler inside a function, naming a model local to it (a string under ``from
    __future__ import annotations``), is accepted when that is the declared model's name;
    one naming a module-level model of another message is refused as before."""

    class LocalPayload(BaseModel):
        x: int

    local = message("LOCAL", LocalPayload)
    router: Router[Any] = Router()

    @router.on(local)
    async def accepted(ctx: Context[LocalPayload]) -> None:
        return None

    assert router.routes["LOCAL"].handler is accepted
    with pytest.raises(UsageError, match="SayPayload"):

        @router.on(message("OTHER", LocalPayload))  # type: ignore[arg-type]
        async def refused(ctx: Context[SayPayload]) -> None:
            return None


def test_a_local_model_shadowing_a_module_one_of_the_same_name_is_accepted() -> None:
    """A model local to a function named like a module-level one (JoinPayload here): the
    postponed annotation resolves to the module's class, which must not refuse the handler."""

    class JoinPayload(BaseModel):  # shadows the module's JoinPayload
        other: int

    local = message("SHADOW", JoinPayload)
    router: Router[Any] = Router()

    @router.on(local)
    async def handler(ctx: Context[JoinPayload]) -> None:
        return None

    assert router.routes["SHADOW"].handler is handler


def test_rpc_handler_annotated_with_response_model_is_refused() -> None:
    """An RPC handler annotated with the response model instead of the request model is refused."""
    router: Router[Any] = Router()

    async def handler(ctx: Context[User]) -> None:
        return None

    with pytest.raises(UsageError, match="User"):
        router.rpc(GetUser, handler)  # type: ignore[arg-type]


def test_matching_and_bare_context_annotations_are_accepted() -> None:
    """Context[Model], bare Context and Context[Any] all register."""
    router: Router[Any] = Router()

    async def typed(ctx: Context[JoinPayload]) -> None:
        return None

    async def bare(ctx: Context) -> None:  # type: ignore[type-arg]
        return None

    router.on(Join, typed)
    router.on(Say, bare)
    router.on(Ping, _noop)
    assert set(router.routes) == {"JOIN", "SAY", "PING"}


# -- composition ------------------------------------------------------------------------------


def test_include_merges_routes() -> None:
    """include() adds the other router's routes."""
    parent: Router[Any] = Router()
    child: Router[Any] = Router()
    parent.on(Join, _noop)
    child.on(Say, _noop)
    parent.include(child)
    assert set(parent.routes) == {"JOIN", "SAY"}


def test_include_with_clashing_types_is_refused() -> None:
    """include() raises UsageError when both routers handle a type, naming it."""
    parent: Router[Any] = Router()
    child: Router[Any] = Router()
    parent.on(Join, _noop)
    child.on(Join, _noop)
    with pytest.raises(UsageError, match="JOIN"):
        parent.include(child)


def test_include_self_is_refused() -> None:
    """A router cannot include itself."""
    router: Router[Any] = Router()
    with pytest.raises(UsageError):
        router.include(router)


async def test_included_route_is_served() -> None:
    """A route of an included router handles messages sent to the including router."""
    parent: Router[Any] = Router()
    child: Router[Any] = Router()
    seen: list[str] = []

    @child.on(Say)
    async def say(ctx: Context[SayPayload]) -> None:
        seen.append(ctx.payload.text)

    parent.include(child)
    async with TestClient(parent) as client:
        await client.send(Say, {"room": "r", "text": "hi"})
        assert await drain(client) == []
    assert seen == ["hi"]


async def test_include_merges_lifecycle_and_error_hooks() -> None:
    """The included router's on_open, on_close and on_error hooks run for the including router."""
    parent: Router[Any] = Router()
    child: Router[Any] = Router()
    events: list[str] = []
    child.on_open(lambda ctx: events.append("open"))
    child.on_close(lambda ctx: events.append("close"))
    child.on_error(lambda ctx, exc: events.append(f"error:{exc}"))

    @child.on(Say)
    async def say(ctx: Context[SayPayload]) -> None:
        raise RuntimeError("boom")

    parent.include(child)
    async with TestClient(parent) as client:
        await client.send(Say, {"room": "r", "text": "hi"})
        await drain(client)
    assert events == ["open", "error:boom", "close"]


async def test_included_middleware_runs_after_parent_and_before_route_middleware() -> None:
    """For an included route: parent's global, then child's global, then route middleware, then handler."""
    order: list[str] = []
    parent: Router[Any] = Router()
    child: Router[Any] = Router()

    @parent.use
    async def parent_mw(ctx: Context[Any], call_next: Any) -> None:
        order.append("parent")
        await call_next()

    @child.use
    async def child_mw(ctx: Context[Any], call_next: Any) -> None:
        order.append("child")
        await call_next()

    async def route_mw(ctx: Context[Any], call_next: Any) -> None:
        order.append("route")
        await call_next()

    @child.on(Say, middleware=[route_mw])
    async def say(ctx: Context[SayPayload]) -> None:
        order.append("handler")

    parent.include(child)
    async with TestClient(parent) as client:
        await client.send(Say, {"room": "r", "text": "hi"})
        await drain(client)
    assert order == ["parent", "child", "route", "handler"]


async def test_included_middleware_does_not_apply_to_parent_routes() -> None:
    """The included router's global middleware does not run for the including router's own routes."""
    order: list[str] = []
    parent: Router[Any] = Router()
    child: Router[Any] = Router()

    @child.use
    async def child_mw(ctx: Context[Any], call_next: Any) -> None:
        order.append("child")
        await call_next()

    child.on(Say, _noop)

    @parent.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        order.append("join")

    parent.include(child)
    async with TestClient(parent) as client:
        await client.send(Join, {"room": "r"})
        await drain(client)
    assert order == ["join"]


async def test_parent_middleware_added_after_include_still_runs_first() -> None:
    """Global middleware the parent adds after include() still runs before the child's."""
    order: list[str] = []
    parent: Router[Any] = Router()
    child: Router[Any] = Router()

    @child.use
    async def child_mw(ctx: Context[Any], call_next: Any) -> None:
        order.append("child")
        await call_next()

    child.on(Say, _noop)
    parent.include(child)

    @parent.use
    async def parent_mw(ctx: Context[Any], call_next: Any) -> None:
        order.append("parent")
        await call_next()

    async with TestClient(parent) as client:
        await client.send(Say, {"room": "r", "text": "hi"})
        await drain(client)
    assert order == ["parent", "child"]


async def test_nested_include_keeps_middleware_order() -> None:
    """Including a router that included another runs middleware outermost router first."""
    order: list[str] = []
    routers: list[Router[Any]] = [Router(), Router(), Router()]
    for name, router in zip(("top", "middle", "bottom"), routers, strict=True):

        async def mw(ctx: Context[Any], call_next: Any, name: str = name) -> None:
            order.append(name)
            await call_next()

        router.use(mw)
    routers[2].on(Say, _noop)
    routers[1].include(routers[2])
    routers[0].include(routers[1])
    async with TestClient(routers[0]) as client:
        await client.send(Say, {"room": "r", "text": "hi"})
        await drain(client)
    assert order == ["top", "middle", "bottom"]


# -- middleware -------------------------------------------------------------------------------


async def test_global_middleware_runs_before_route_middleware_in_order() -> None:
    """Global middleware in registration order, then route middleware in list order, then the handler."""
    order: list[str] = []
    router: Router[Any] = Router()

    def recorder(name: str) -> Any:
        async def mw(ctx: Context[Any], call_next: Any) -> None:
            order.append(name)
            await call_next()
            order.append(f"/{name}")

        return mw

    router.use(recorder("g1"))
    router.use(recorder("g2"))

    @router.on(Join, middleware=[recorder("r1"), recorder("r2")])
    async def join(ctx: Context[JoinPayload]) -> None:
        order.append("handler")

    async with TestClient(router) as client:
        await client.send(Join, {"room": "r"})
        await drain(client)
    assert order == ["g1", "g2", "r1", "r2", "handler", "/r2", "/r1", "/g2", "/g1"]


async def test_middleware_not_calling_next_stops_the_handler() -> None:
    """Middleware that returns without call_next() keeps the handler from running."""
    seen: list[str] = []
    router: Router[Any] = Router()

    @router.use
    async def gate(ctx: Context[Any], call_next: Any) -> None:
        return None

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        seen.append("handler")

    async with TestClient(router) as client:
        await client.send(Join, {"room": "r"})
        assert await drain(client) == []
    assert seen == []


async def test_call_next_twice_raises_usage_error() -> None:
    """A second call_next() raises UsageError: the handler runs once, on_error gets it, the client gets INTERNAL."""
    ran: list[str] = []
    errors: list[BaseException] = []
    router: Router[Any] = Router()
    router.on_error(lambda ctx, exc: errors.append(exc))

    @router.use
    async def twice(ctx: Context[Any], call_next: Any) -> None:
        await call_next()
        await call_next()

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        ran.append("handler")

    async with TestClient(router) as client:
        await client.send(Join, {"room": "r"})
        frames = await drain(client)
    assert ran == ["handler"]
    assert [type(e) for e in errors] == [UsageError]
    assert "call_next" in str(errors[0])
    assert [(f.type, f.payload["code"]) for f in frames] == [("ERROR", "INTERNAL")]


async def test_middleware_raising_wskit_error_answers_it() -> None:
    """WsKitError raised in middleware is sent as that error and the handler does not run."""
    router: Router[Any] = Router()
    seen: list[str] = []

    async def require_auth(ctx: Context[Any], call_next: Any) -> None:
        if "user_id" not in ctx.data:
            raise WsKitError(ErrorCode.UNAUTHENTICATED, "log in first")
        await call_next()

    @router.on(Join, middleware=[require_auth])
    async def join(ctx: Context[JoinPayload]) -> None:
        seen.append("handler")

    async with TestClient(router) as client:
        await client.send(Join, {"room": "r"})
        frames = await drain(client)
    assert [(f.type, f.payload["code"], f.payload["message"]) for f in frames] == [
        ("ERROR", "UNAUTHENTICATED", "log in first")
    ]
    assert seen == []


# -- errors from handlers -----------------------------------------------------------------------


async def test_on_error_receives_handler_exception() -> None:
    """on_error(ctx, exc) gets the very exception a handler raised, with the message's context."""
    got: list[tuple[str, BaseException]] = []
    router: Router[Any] = Router()
    boom = RuntimeError("boom")

    @router.on_error
    async def on_error(ctx: Context[Any], exc: BaseException) -> None:
        got.append((ctx.type, exc))

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        raise boom

    async with TestClient(router) as client:
        await client.send(Join, {"room": "r"})
        await drain(client)
    assert got == [("JOIN", boom)]


async def test_handler_exception_answers_internal_without_leaking() -> None:
    """A non-WsKitError exception is answered with INTERNAL and a message that does not leak it."""
    router: Router[Any] = Router()

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        raise RuntimeError("secret-database-password")

    async with TestClient(router) as client:
        await client.send(Join, {"room": "r"})
        frames = await drain(client)
    assert [(f.type, f.payload["code"]) for f in frames] == [("ERROR", "INTERNAL")]
    assert b"secret-database-password" not in frames[0].raw


async def test_handler_wskit_error_is_answered_as_given() -> None:
    """WsKitError raised in a handler is sent with its code, message, details and retryAfterMs."""
    router: Router[Any] = Router()

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        raise WsKitError("ROOM_FULL", "room is full", details={"room": ctx.payload.room}, retry_after_ms=250)

    async with TestClient(router) as client:
        await client.send(Join, {"room": "r"})
        frames = await drain(client)
    assert [f.payload for f in frames] == [
        {"code": "ROOM_FULL", "message": "room is full", "details": {"room": "r"}, "retryAfterMs": 250}
    ]


async def test_rpc_error_carries_correlation_id() -> None:
    """ctx.error in an RPC answers RPC_ERROR with the request's correlationId."""
    router: Router[Any] = Router()

    @router.rpc(GetUser)
    async def get_user(ctx: Context[UserReq]) -> None:
        await ctx.error(ErrorCode.NOT_FOUND, "no such user", details={"id": ctx.payload.id})

    async with TestClient(router) as client:
        with pytest.raises(RpcError) as info:
            await client.request(GetUser, {"id": "9"}, correlation_id="c-7")
    assert info.value.code is ErrorCode.NOT_FOUND
    assert info.value.meta == {"correlationId": "c-7"}
    assert info.value.details == {"id": "9"}


async def test_reply_in_event_handler_answers_internal() -> None:
    """ctx.reply() in an event handler is a UsageError: INTERNAL to the client."""
    router: Router[Any] = Router()

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        await ctx.reply({"id": "1", "name": "Ada"})

    async with TestClient(router) as client:
        await client.send(Join, {"room": "r"})
        frames = await drain(client)
    assert [(f.type, f.payload["code"]) for f in frames] == [("ERROR", "INTERNAL")]


async def test_reply_in_event_handler_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """ctx.reply() in an event handler leaves an ERROR log line explaining the mistake."""
    router: Router[Any] = Router()

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        await ctx.reply({"id": "1", "name": "Ada"})

    with caplog.at_level(logging.ERROR, logger="wskit"):
        async with TestClient(router) as client:
            await client.send(Join, {"room": "r"})
            await drain(client)
    records = [r for r in caplog.records if r.name.startswith("wskit") and r.levelno >= logging.ERROR]
    assert records
    assert "reply" in caplog.text and "RPC" in caplog.text


# -- connection data --------------------------------------------------------------------------


async def test_assign_data_is_visible_to_later_messages() -> None:
    """ctx.assign_data() in one handler is seen in ctx.data by later messages of that connection."""
    seen: list[Any] = []
    router: Router[Any] = Router()

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        ctx.assign_data(room=ctx.payload.room)

    @router.on(Ping)
    async def ping(ctx: Context[None]) -> None:
        seen.append(dict(ctx.data))

    async with TestClient(router, data={"user_id": "u1"}) as client:
        await client.send(Join, {"room": "kitchen"})
        await client.send(Ping)
        await drain(client)
    assert seen == [{"user_id": "u1", "room": "kitchen"}]


async def test_assign_data_is_per_connection() -> None:
    """Data assigned on one connection is not seen by another."""
    seen: list[Any] = []
    router: Router[Any] = Router()

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        ctx.assign_data(room=ctx.payload.room)

    @router.on(Ping)
    async def ping(ctx: Context[None]) -> None:
        seen.append(dict(ctx.data))

    async with TestClient(router) as first, TestClient(router) as second:
        await first.send(Join, {"room": "kitchen"})
        await drain(first)
        await second.send(Ping)
        await drain(second)
    assert seen == [{}]


async def test_ctx_data_is_read_only() -> None:
    """Writing to ctx.data raises TypeError (use assign_data)."""
    outcome: list[str] = []
    router: Router[Any] = Router()

    @router.on(Ping)
    async def ping(ctx: Context[None]) -> None:
        try:
            ctx.data["user_id"] = "intruder"  # type: ignore[index]
        except TypeError:
            outcome.append("refused")
        outcome.append(str(ctx.data.get("user_id")))

    async with TestClient(router, data={"user_id": "u1"}) as client:
        await client.send(Ping)
        await drain(client)
    assert outcome == ["refused", "u1"]


# -- topics -----------------------------------------------------------------------------------


async def test_invalid_topic_name_is_invalid_argument() -> None:
    """Subscribing to a name outside the topic pattern answers INVALID_ARGUMENT."""
    async with TestClient(joining_router()) as client:
        await client.send(Join, {"room": "bad topic!"})
        frames = await drain(client)
        assert client.connection.topics == set()
    assert [(f.type, f.payload["code"]) for f in frames] == [("ERROR", "INVALID_ARGUMENT")]


async def test_authorize_refusal_is_permission_denied() -> None:
    """An authorize hook returning False answers PERMISSION_DENIED and the topic is not joined."""
    policy = TopicPolicy(authorize=lambda ctx, topic, action: topic != "secret")
    async with TestClient(joining_router(policy)) as client:
        await client.send(Join, {"room": "secret"})
        await client.send(Join, {"room": "public"})
        frames = await drain(client)
        assert client.connection.topics == {"public"}
    assert [(f.type, f.payload["code"]) for f in frames] == [("ERROR", "PERMISSION_DENIED")]


async def test_async_authorize_is_awaited() -> None:
    """An async authorize hook is awaited and its answer respected."""

    async def authorize(ctx: Context[Any], topic: str, action: str) -> bool:
        return action != "publish"

    async with TestClient(joining_router(TopicPolicy(authorize=authorize))) as client:
        await client.send(Join, {"room": "lobby"})
        await client.send(Say, {"room": "lobby", "text": "hi"})
        frames = await drain(client)
    assert [(f.type, f.payload["code"]) for f in frames] == [("ERROR", "PERMISSION_DENIED")]


async def test_router_publish_is_not_asked_to_authorize() -> None:
    """Server-side router.publish() bypasses the authorize hook (it is not a client's action)."""
    asked: list[str] = []

    def authorize(ctx: Context[Any], topic: str, action: str) -> bool:
        asked.append(action)
        return action == "subscribe"

    router = joining_router(TopicPolicy(authorize=authorize))
    async with TestClient(router) as client:
        await client.send(Join, {"room": "lobby"})
        await drain(client)
        await router.publish("lobby", RoomMsg, {"room": "lobby", "text": "hi"})
        frames = await drain(client)
    assert [f.type for f in frames] == ["ROOM_MSG"]
    assert asked == ["subscribe"]


async def test_topic_limit_is_resource_exhausted() -> None:
    """Subscribing beyond max_topics_per_connection answers RESOURCE_EXHAUSTED."""
    async with TestClient(joining_router(TopicPolicy(max_topics_per_connection=2))) as client:
        for room in ("a", "b", "c"):
            await client.send(Join, {"room": room})
        frames = await drain(client)
        assert client.connection.topics == {"a", "b"}
    assert [(f.type, f.payload["code"]) for f in frames] == [("ERROR", "RESOURCE_EXHAUSTED")]


async def test_resubscribing_at_the_topic_limit_is_fine() -> None:
    """Subscribing again to a topic already held does not count against the limit."""
    async with TestClient(joining_router(TopicPolicy(max_topics_per_connection=1))) as client:
        await client.send(Join, {"room": "a"})
        await client.send(Join, {"room": "a"})
        assert await drain(client) == []


async def test_topic_normalize_is_applied() -> None:
    """normalize runs before subscribing and publishing, so "Lobby" and "LOBBY" are one topic."""
    router = joining_router(TopicPolicy(normalize=str.lower))
    async with TestClient(router) as client:
        await client.send(Join, {"room": "Lobby"})
        await drain(client)
        assert client.connection.topics == {"lobby"}
        await router.publish("LOBBY", RoomMsg, {"room": "lobby", "text": "hi"})
        frames = await drain(client)
    assert [(f.type, f.payload) for f in frames] == [("ROOM_MSG", {"room": "lobby", "text": "hi"})]


async def test_unsubscribe_leaves_the_topic() -> None:
    """ctx.unsubscribe() removes the topic from ctx.topics; later publishes do not arrive."""
    router = joining_router()

    @router.on(Ping)
    async def leave(ctx: Context[None]) -> None:
        await ctx.unsubscribe("lobby")
        assert ctx.topics == frozenset()

    async with TestClient(router) as client:
        await client.send(Join, {"room": "lobby"})
        await client.send(Ping)
        await drain(client)
        await router.publish("lobby", RoomMsg, {"room": "lobby", "text": "hi"})
        assert await drain(client) == []


# -- publishing -------------------------------------------------------------------------------


async def test_publish_from_outside_a_handler_reaches_subscribers() -> None:
    """router.publish() from test code (no handler) reaches every subscriber, without meta."""
    router = joining_router()
    async with TestClient(router) as a, TestClient(router) as b, TestClient(router) as outsider:
        await a.send(Join, {"room": "lobby"})
        await b.send(Join, {"room": "lobby"})
        await drain(a)
        await drain(b)
        await router.publish("lobby", RoomMsg, {"room": "lobby", "text": "news"})
        got_a, got_b, got_outsider = await drain(a), await drain(b), await drain(outsider)
    for got in (got_a, got_b):
        assert [(m.type, m.payload) for m in got] == [("ROOM_MSG", {"room": "lobby", "text": "news"})]
        assert b'"meta"' not in got[0].raw
    assert got_outsider == []


async def test_publish_includes_sender_by_default() -> None:
    """ctx.publish() delivers to the publishing connection too unless exclude_self=True."""
    router: Router[Any] = Router()

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        await ctx.subscribe(ctx.payload.room)

    @router.on(Say)
    async def say(ctx: Context[SayPayload]) -> None:
        await ctx.publish(ctx.payload.room, RoomMsg, ctx.payload, exclude_self=ctx.payload.text == "quiet")

    async with TestClient(router) as client:
        await client.send(Join, {"room": "lobby"})
        await client.send(Say, {"room": "lobby", "text": "loud"})
        await client.send(Say, {"room": "lobby", "text": "quiet"})
        frames = await drain(client)
    assert [m.payload["text"] for m in frames] == ["loud"]


async def test_publish_to_many_subscribers_shares_one_frame() -> None:
    """A publish to N subscribers hands every one of them the very same bytes object."""
    router = joining_router()
    clients = [TestClient(router) for _ in range(4)]
    for client in clients:
        await client.connect()
        await client.send(Join, {"room": "lobby"})
        await drain(client)
    await router.publish("lobby", RoomMsg, {"room": "lobby", "text": "once"})
    raws = [(await drain(client))[0].raw for client in clients]
    for client in clients:
        await client.close()
    assert all(raw is raws[0] for raw in raws)


async def test_publish_to_many_subscribers_encodes_once() -> None:
    """A publish to N subscribers serialises the message once (the codec counts one encode)."""
    router = joining_router()
    clients = [TestClient(router) for _ in range(4)]
    for client in clients:
        await client.connect()
        await client.send(Join, {"room": "lobby"})
        await drain(client)
    before = router.runtime.codec.encodes["ROOM_MSG"]
    await router.publish("lobby", RoomMsg, {"room": "lobby", "text": "once"})
    received = [await drain(client) for client in clients]
    for client in clients:
        await client.close()
    assert router.runtime.codec.encodes["ROOM_MSG"] - before == 1
    assert [len(frames) for frames in received] == [1, 1, 1, 1]


async def test_publish_with_invalid_topic_name_raises() -> None:
    """router.publish() to a name outside the pattern raises WsKitError INVALID_ARGUMENT."""
    router = joining_router()
    with pytest.raises(WsKitError) as info:
        await router.publish("bad topic!", RoomMsg, {"room": "x", "text": "y"})
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
