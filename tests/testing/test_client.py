"""``wskit.testing.TestClient``: typed responses with only core dependencies, and ``authenticate=``."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from typing_extensions import TypedDict

from wskit import Context, Router, UsageError, message, rpc
from wskit.schema import RpcSchema
from wskit.testing import TestClient
from wskit.transports.base import HandshakeRequest


@dataclasses.dataclass
class UserReq:
    id: str


@dataclasses.dataclass
class User:
    id: str
    name: str


class UserDict(TypedDict):
    id: str
    name: str


GetUser = rpc("GET_USER", UserReq, "USER", User)
GetUserDict = rpc("GET_USER_DICT", UserReq, "USER_DICT", UserDict)
WhoAmI: RpcSchema[None, UserDict] = rpc("WHO_AM_I", None, "YOU_ARE", UserDict)
Hello = message("HELLO")


def build() -> Router[Any]:
    router: Router[Any] = Router()

    @router.rpc(GetUser)
    async def get_user(ctx: Context[UserReq]) -> None:
        await ctx.reply({"id": ctx.payload.id, "name": "Ada"})

    @router.rpc(GetUserDict)
    async def get_user_dict(ctx: Context[UserReq]) -> None:
        await ctx.reply({"id": ctx.payload.id, "name": "Grace"})

    @router.rpc(WhoAmI)
    async def who_am_i(ctx: Context[None]) -> None:
        await ctx.reply({"id": str(ctx.data.get("user_id")), "name": str(ctx.data.get("name"))})

    return router


@pytest.fixture
def without_msgspec(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import msgspec`` fails, as with only the core dependencies installed."""
    monkeypatch.setitem(sys.modules, "msgspec", None)


# -- typed responses ----------------------------------------------------------------------------


async def test_dataclass_response_without_msgspec(without_msgspec: None) -> None:
    """request() builds a dataclass response with pydantic alone (msgspec not installed)."""
    async with TestClient(build()) as client:
        res = await client.request(GetUser, {"id": "7"})
    assert res.payload == User(id="7", name="Ada")
    assert type(res.payload) is User


async def test_typed_dict_response_without_msgspec(without_msgspec: None) -> None:
    """request() validates a TypedDict response with pydantic alone."""
    async with TestClient(build()) as client:
        res = await client.request(GetUserDict, {"id": "8"})
    assert res.payload == {"id": "8", "name": "Grace"}


async def test_send_takes_a_dataclass_instance(without_msgspec: None) -> None:
    """send()/request() accept a model instance as the payload (serialised without msgspec)."""
    async with TestClient(build()) as client:
        res = await client.request(GetUser, UserReq(id="9"))
    assert res.payload.id == "9"


# -- authenticate= ------------------------------------------------------------------------------


def request_with(headers: Mapping[str, str] | None = None, query: Mapping[str, str] | None = None) -> HandshakeRequest:
    return HandshakeRequest(path="/", headers=dict(headers or {}), query_params=dict(query or {}))


def by_token(request: HandshakeRequest) -> dict[str, Any] | None:
    """A typical hook: a bearer token in any header case, or ``access_token`` in the query."""
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ") or request.query_params.get("access_token")
    return {"user_id": f"u-{token}", "name": "Ada"} if token else None


async def test_authenticate_result_becomes_the_connection_data() -> None:
    """What authenticate returns is ctx.data in handlers, as under serve()."""
    client = TestClient(build(), authenticate=by_token, request=request_with(query={"access_token": "1"}))
    async with client:
        res = await client.request(WhoAmI)
    assert res.payload == {"id": "u-1", "name": "Ada"}


async def test_authenticate_sees_case_insensitive_headers() -> None:
    """Headers given in any case are found in any case, as every real transport gives them."""
    client = TestClient(build(), authenticate=by_token, request=request_with(headers={"AUTHORIZATION": "Bearer 2"}))
    async with client:
        res = await client.request(WhoAmI)
    assert res.payload["id"] == "u-2"


async def test_async_authenticate_is_awaited() -> None:
    """An async authenticate is awaited."""

    async def hook(request: HandshakeRequest) -> dict[str, Any]:
        return {"user_id": "async-user"}

    async with TestClient(build(), authenticate=hook) as client:
        res = await client.request(WhoAmI)
    assert res.payload["id"] == "async-user"


async def test_authenticate_returning_none_refuses_with_401() -> None:
    """None from authenticate refuses the connection: connect() is False, refusal is 401 Unauthorized."""
    opened: list[str] = []
    router = build()

    @router.on_open
    async def on_open(ctx: Context[None]) -> None:
        opened.append(ctx.client_id)

    client = TestClient(router, authenticate=by_token)
    assert await client.connect() is False
    assert client.refusal is not None
    assert (client.refusal.status, client.refusal.text) == (401, "Unauthorized")
    assert opened == []


async def test_authenticate_returning_false_refuses_with_401() -> None:
    """False reads as "not authenticated", like None: 401 Unauthorized."""
    client = TestClient(build(), authenticate=lambda request: False)  # type: ignore[arg-type, return-value]
    assert await client.connect() is False
    assert client.refusal is not None
    assert (client.refusal.status, client.refusal.text) == (401, "Unauthorized")


@pytest.mark.parametrize("result", [0, "", "user", ["user_id"]], ids=["zero", "empty", "str", "list"])
async def test_authenticate_returning_a_non_mapping_refuses(result: object) -> None:
    """Any other non-mapping result (falsy or not) is a bug in the hook: refused, as serve() answers 500."""
    client = TestClient(build(), authenticate=lambda request: result)  # type: ignore[arg-type, return-value]
    assert await client.connect() is False
    assert client.refusal is not None and client.refusal.status == 500


async def test_authenticate_returning_an_empty_mapping_admits() -> None:
    """An empty mapping is a mapping: the connection is admitted with empty data."""
    async with TestClient(build(), authenticate=lambda request: {}) as client:
        res = await client.request(WhoAmI)
    assert client.refusal is None
    assert res.payload["id"] == "None"


async def test_authenticate_raising_refuses_with_500() -> None:
    """An exception in authenticate refuses the connection (HTTP 500 under serve()), it does not escape."""

    def broken(request: HandshakeRequest) -> dict[str, Any]:
        raise RuntimeError("bug in the hook")

    client = TestClient(build(), authenticate=broken)
    assert await client.connect() is False
    assert client.refusal is not None and client.refusal.status == 500


async def test_refused_client_cannot_send_or_receive() -> None:
    """After a refusal, send() and receive() raise ConnectionError naming the status."""
    client = TestClient(build(), authenticate=by_token)
    async with client:
        with pytest.raises(ConnectionError, match="401"):
            await client.send(Hello)
        with pytest.raises(ConnectionError, match="401"):
            await client.receive()


def test_data_and_authenticate_together_are_refused() -> None:
    """data= and authenticate= both set the connection data: passing both is a UsageError."""
    with pytest.raises(UsageError, match="authenticate"):
        TestClient(build(), data={"user_id": "u"}, authenticate=by_token)


# -- closing ------------------------------------------------------------------------------------


async def test_close_waits_for_on_close_which_still_sees_the_topics() -> None:
    """close() returns after on_close ran; the hook still sees ctx.topics (guide, on_close)."""
    seen: list[frozenset[str]] = []
    join = message("JOIN")
    router = build()

    @router.on(join)
    async def on_join(ctx: Context[None]) -> None:
        await ctx.subscribe("room:a")

    @router.on_close
    async def on_close(ctx: Context[None]) -> None:
        seen.append(frozenset(ctx.topics))

    client = TestClient(router)
    async with client:
        await client.send(join)
        await client.request(WhoAmI)  # JOIN was handled before this answer
    assert seen == [frozenset({"room:a"})]
    assert client.connection.topics == frozenset()
