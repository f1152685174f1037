"""The AUTH message flow, require_auth and token expiry, through the in-memory client."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import BaseModel
from tests.guards.conftest import OTHER_SECRET, SECRET, make_token

from wskit import Context, ErrorCode, Router, RpcSchema, message, rpc
from wskit.guards import (
    AUTH_EXPIRED_MESSAGE,
    AUTH_REQUIRED_MESSAGE,
    Auth,
    AuthOk,
    JwtVerifier,
    RequireAuth,
    auth_routes,
    require_auth,
    token_expired,
)
from wskit.testing import RpcError, TestClient


class Text(BaseModel):
    text: str


Post = message("POST", Text)
Posted = message("POSTED", Text)
Secret: RpcSchema[None, Text] = rpc("SECRET", None, "SECRET_IS", Text)
Public = message("PUBLIC", Text)


def build(*, globally: bool) -> tuple[Router[Any], list[tuple[str, Any]]]:
    """An app with AUTH, a protected event and RPC, and a public event; handlers record who ran them."""
    router: Router[Any] = Router()
    ran: list[tuple[str, Any]] = []
    router.include(auth_routes(JwtVerifier(SECRET)))
    guard = [] if globally else [require_auth]
    if globally:
        router.use(require_auth)

    @router.on(Post, middleware=guard)
    async def post(ctx: Context[Text]) -> None:
        ran.append(("POST", ctx.data["user_id"]))
        await ctx.send(Posted, ctx.payload)

    @router.rpc(Secret, middleware=guard)
    async def secret(ctx: Context[None]) -> None:
        ran.append(("SECRET", ctx.data["user_id"]))
        await ctx.reply({"text": f"hello {ctx.data['user_id']}"})

    if not globally:

        @router.on(Public)
        async def public(ctx: Context[Text]) -> None:
            ran.append(("PUBLIC", ctx.data.get("user_id")))
            await ctx.send(Posted, ctx.payload)

    return router, ran


@pytest.mark.parametrize("globally", [True, False], ids=["router.use", "route-middleware"])
async def test_protected_routes_refuse_before_auth_and_handlers_do_not_run(globally: bool) -> None:
    """Before AUTH, an event gets ERROR and an RPC gets RPC_ERROR UNAUTHENTICATED; no handler runs."""
    router, ran = build(globally=globally)
    async with TestClient(router) as client:
        await client.send(Post, {"text": "hi"})
        refused = await client.receive()
        assert refused.type == "ERROR"
        assert (refused.payload["code"], refused.payload["message"]) == ("UNAUTHENTICATED", AUTH_REQUIRED_MESSAGE)
        with pytest.raises(RpcError) as raised:
            await client.request(Secret)
        assert raised.value.code == ErrorCode.UNAUTHENTICATED
    assert ran == []


@pytest.mark.parametrize("globally", [True, False], ids=["router.use", "route-middleware"])
async def test_after_auth_protected_routes_run(globally: bool) -> None:
    """AUTH answers AUTH_OK with the user and expiry; then protected handlers run as that user."""
    router, ran = build(globally=globally)
    token = make_token(sub="alice")
    async with TestClient(router) as client:
        ok = await client.request(Auth, {"token": token})
        assert ok.type == "AUTH_OK"
        assert isinstance(ok.payload, AuthOk)
        assert ok.payload.user_id == "alice"
        assert ok.payload.expires_at is not None and ok.payload.expires_at > time.time()
        assert client.connection.data["user_id"] == "alice"
        assert client.connection.data["claims"]["sub"] == "alice"
        assert (await client.request(Secret)).payload.text == "hello alice"
        await client.send(Post, {"text": "hi"})
        assert (await client.receive()).type == "POSTED"
    assert ran == [("SECRET", "alice"), ("POST", "alice")]


async def test_unprotected_routes_need_no_auth() -> None:
    """With require_auth on some routes only, the others run for anonymous connections."""
    router, ran = build(globally=False)
    async with TestClient(router) as client:
        await client.send(Public, {"text": "hi"})
        assert (await client.receive()).type == "POSTED"
    assert ran == [("PUBLIC", None)]


async def test_bad_token_in_auth_is_refused_and_keeps_the_connection_anonymous() -> None:
    """AUTH with an expired token: RPC_ERROR UNAUTHENTICATED "Token expired"; protected routes stay closed."""
    router, ran = build(globally=True)
    async with TestClient(router) as client:
        with pytest.raises(RpcError) as raised:
            await client.request(Auth, {"token": make_token(ttl_s=-300)})
        assert (raised.value.code, raised.value.message) == (ErrorCode.UNAUTHENTICATED, "Token expired")
        assert raised.value.details == {"reason": "expired"}
        with pytest.raises(RpcError):
            await client.request(Secret)
    assert ran == []


async def test_reauth_extends_the_session() -> None:
    """A second AUTH for the same user replaces claims and moves the expiry later."""
    router, _ = build(globally=True)
    async with TestClient(router) as client:
        first = await client.request(Auth, {"token": make_token({"v": 1}, ttl_s=60)})
        second = await client.request(Auth, {"token": make_token({"v": 2}, ttl_s=3600)})
        assert first.payload.expires_at is not None and second.payload.expires_at is not None
        assert second.payload.expires_at > first.payload.expires_at
        assert client.connection.data["token_exp"] == second.payload.expires_at
        assert client.connection.data["claims"]["v"] == 2


async def test_auth_renews_an_expired_session() -> None:
    """A connection whose token ran out is refused "Token expired", and AUTH with a fresh one lets it go on."""
    router, ran = build(globally=True)
    old = {"user_id": "u1", "claims": {}, "token_exp": int(time.time()) - 120}
    async with TestClient(router, data=old) as client:
        with pytest.raises(RpcError) as raised:
            await client.request(Secret)
        assert (raised.value.code, raised.value.message) == (ErrorCode.UNAUTHENTICATED, AUTH_EXPIRED_MESSAGE)
        await client.request(Auth, {"token": make_token(sub="u1")})
        assert (await client.request(Secret)).payload.text == "hello u1"
    assert ran == [("SECRET", "u1")]


async def test_auth_for_a_different_user_is_refused() -> None:
    """On a connection authenticated as alice, AUTH with bob's token is PERMISSION_DENIED and alice stays."""
    router, ran = build(globally=True)
    async with TestClient(router) as client:
        await client.request(Auth, {"token": make_token(sub="alice")})
        with pytest.raises(RpcError) as raised:
            await client.request(Auth, {"token": make_token(sub="bob")})
        assert raised.value.code == ErrorCode.PERMISSION_DENIED
        assert (await client.request(Secret)).payload.text == "hello alice"
    assert ran == [("SECRET", "alice")]


async def test_auth_after_upgrade_authentication_must_match_the_user() -> None:
    """A connection authenticated at the upgrade (data from authenticate) can renew, not switch user."""
    router, _ = build(globally=True)
    async with TestClient(router, data={"user_id": "u1"}) as client:
        with pytest.raises(RpcError) as raised:
            await client.request(Auth, {"token": make_token(sub="u2")})
        assert raised.value.code == ErrorCode.PERMISSION_DENIED
        assert (await client.request(Auth, {"token": make_token(sub="u1")})).payload.user_id == "u1"


async def test_auth_with_a_token_signed_by_another_key_is_refused() -> None:
    """A forged or foreign token in AUTH is UNAUTHENTICATED (bad signature)."""
    router, _ = build(globally=True)
    async with TestClient(router) as client:
        with pytest.raises(RpcError) as raised:
            await client.request(Auth, {"token": make_token(key=OTHER_SECRET)})
    assert raised.value.details == {"reason": "signature"}


# -- expiry -------------------------------------------------------------------------------------------


def test_token_expired() -> None:
    """token_expired compares token_exp plus the leeway with now; no token_exp never expires."""
    assert token_expired({"token_exp": 1000}, 1000, leeway_s=0)
    assert not token_expired({"token_exp": 1000}, 999.5, leeway_s=0)
    assert not token_expired({"token_exp": 1000}, 1029)  # default leeway 30 s
    assert token_expired({"token_exp": 1000}, 1030)
    assert not token_expired({"user_id": "u1"}, 10**12)
    assert not token_expired({"token_exp": None}, 10**12)
    assert token_expired({"token_exp": time.time() - 60})


async def test_require_auth_leeway_and_exemptions_are_configurable() -> None:
    """RequireAuth(leeway_s=0) refuses a token just past exp; exempt types pass without a user."""
    router: Router[Any] = Router()
    ran: list[str] = []
    router.use(RequireAuth(leeway_s=0, exempt={"PUBLIC"}))

    @router.on(Public)
    async def public(ctx: Context[Text]) -> None:
        ran.append("PUBLIC")
        await ctx.send(Posted, ctx.payload)

    @router.rpc(Secret)
    async def secret(ctx: Context[None]) -> None:
        ran.append("SECRET")
        await ctx.reply({"text": "x"})

    async with TestClient(router, data={"user_id": "u1", "token_exp": int(time.time()) - 1}) as client:
        await client.send(Public, {"text": "hi"})
        assert (await client.receive()).type == "POSTED"
        with pytest.raises(RpcError) as raised:
            await client.request(Secret)
        assert raised.value.message == AUTH_EXPIRED_MESSAGE
    assert ran == ["PUBLIC"]
