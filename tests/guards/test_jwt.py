"""JWT verification, token extraction from upgrade requests, and authentication at the upgrade."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from tests.guards.conftest import OTHER_SECRET, SECRET, make_token
from tests.support.ci import unavailable
from tests.support.serving import SERVING, Served, serving
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from wskit import Context, ErrorCode, HandshakeRequest, Router, RpcSchema, UsageError, WsKitError, rpc
from wskit.guards import (
    JwtVerifier,
    TokenPlace,
    TokenSource,
    jwt_authenticate,
    token_from_request,
)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def refusal(verifier: JwtVerifier, token: Any) -> WsKitError:
    """The error ``verify`` raises for ``token`` (fails the test when it accepts it)."""
    with pytest.raises(WsKitError) as raised:
        verifier.verify(token)
    assert raised.value.code == "UNAUTHENTICATED"
    return raised.value


# -- verification -------------------------------------------------------------------------------------


def test_valid_token_gives_its_claims() -> None:
    """A token signed with the key, unexpired, gives back its claims."""
    claims = JwtVerifier(SECRET).verify(make_token({"role": "admin"}))
    assert claims["sub"] == "u1"
    assert claims["role"] == "admin"


@pytest.mark.parametrize(
    ("token", "reason", "message"),
    [
        pytest.param(make_token(ttl_s=-120), "expired", "Token expired", id="expired-after-leeway"),
        pytest.param(make_token({"nbf": int(time.time()) + 3600}), "not_yet_valid", "Token not yet valid", id="nbf"),
        pytest.param(make_token({"iat": int(time.time()) + 3600}), "not_yet_valid", "Token not yet valid", id="iat"),
        pytest.param(make_token(key=OTHER_SECRET), "signature", "Token signature is invalid", id="wrong-key"),
        pytest.param(
            make_token(key="x" * 64, algorithm="HS512"), "algorithm", "Token algorithm not allowed", id="hs512"
        ),
        pytest.param(
            f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': 'admin', 'exp': int(time.time()) + 300})}.",
            "algorithm",
            "Token algorithm not allowed",
            id="forged-alg-none",
        ),
        pytest.param(
            f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64({'sub': 'admin', 'exp': int(time.time()) + 300})}.c2ln",
            "algorithm",
            "Token algorithm not allowed",
            id="rs256-header",
        ),
        pytest.param(make_token({"aud": "billing"}), "audience", "Token has the wrong audience", id="aud-unexpected"),
        pytest.param(make_token(ttl_s=None), "missing_claim", "Token lacks the required 'exp' claim", id="no-exp"),
        pytest.param(make_token(sub=None), "missing_claim", "Token lacks the required 'sub' claim", id="no-sub"),
        pytest.param("not-a-token", "malformed", "Malformed token", id="garbage"),
        pytest.param("a.b.c", "malformed", "Malformed token", id="three-garbage-parts"),
        pytest.param("", "malformed", "Malformed token", id="empty"),
        pytest.param(None, "malformed", "Malformed token", id="none"),
        pytest.param("a" * 9000, "malformed", "Malformed token", id="oversized"),
    ],
)
def test_refusals_say_why(token: Any, reason: str, message: str) -> None:
    """Each kind of bad token is refused UNAUTHENTICATED with a clear message and details.reason."""
    error = refusal(JwtVerifier(SECRET), token)
    assert (error.message, error.details) == (message, {"reason": reason})


def test_forged_alg_none_is_refused_even_when_the_signature_is_dropped_from_a_real_token() -> None:
    """A real token re-headed as alg none, signature removed, is refused as a wrong algorithm."""
    _, body, _ = make_token().split(".")
    forged = f"{_b64({'alg': 'none'})}.{body}."
    assert refusal(JwtVerifier(SECRET), forged).details == {"reason": "algorithm"}


def test_expiry_within_the_leeway_is_accepted() -> None:
    """A token expired 10 s ago passes with the default 30 s leeway, and fails with none."""
    token = make_token(ttl_s=-10)
    assert JwtVerifier(SECRET).verify(token)["sub"] == "u1"
    assert refusal(JwtVerifier(SECRET, leeway_s=0), token).details == {"reason": "expired"}


def test_not_before_within_the_leeway_is_accepted() -> None:
    """A token valid from 10 s in the future passes with the default leeway (the issuer's clock is ahead)."""
    assert JwtVerifier(SECRET).verify(make_token({"nbf": int(time.time()) + 10}))["sub"] == "u1"


def test_audience_and_issuer_are_checked() -> None:
    """With audience and issuer set, only tokens naming both pass; a missing one is a missing claim."""
    verifier = JwtVerifier(SECRET, audience="chat", issuer="https://auth.example")
    good = {"aud": "chat", "iss": "https://auth.example"}
    assert verifier.verify(make_token(good))["aud"] == "chat"
    assert verifier.verify(make_token({**good, "aud": ["billing", "chat"]}))["sub"] == "u1"
    assert refusal(verifier, make_token({**good, "aud": "billing"})).message == "Token has the wrong audience"
    assert (
        refusal(verifier, make_token({**good, "iss": "https://evil.example"})).message == "Token has the wrong issuer"
    )
    assert refusal(verifier, make_token({"iss": "https://auth.example"})).details == {"reason": "missing_claim"}
    assert refusal(verifier, make_token({"aud": "chat"})).details == {"reason": "missing_claim"}


def test_other_pinned_algorithms_and_user_claims() -> None:
    """A verifier pinned to HS512 takes HS512 and refuses HS256; the user may come from another claim."""
    key = "k" * 64
    verifier = JwtVerifier(key, algorithms=("HS512",), user_claim="uid")
    claims = verifier.verify(make_token({"uid": 42}, key=key, algorithm="HS512"))
    assert verifier.user_id(claims) == "42"
    assert refusal(verifier, make_token({"uid": 42}, key=key)).details == {"reason": "algorithm"}
    assert refusal(verifier, make_token({"uid": ""}, key=key, algorithm="HS512")).details == {"reason": "missing_claim"}


def test_expiry_can_be_made_optional() -> None:
    """With require=(), a token without exp passes (the user claim stays required)."""
    verifier = JwtVerifier(SECRET, require=())
    assert verifier.verify(make_token(ttl_s=None))["sub"] == "u1"
    assert refusal(verifier, make_token(sub=None)).details == {"reason": "missing_claim"}


@pytest.mark.parametrize(
    ("key", "options"),
    [
        pytest.param(SECRET, {"algorithms": ()}, id="no-algorithm"),
        pytest.param(SECRET, {"algorithms": ("none",)}, id="none"),
        pytest.param(SECRET, {"algorithms": ("HS256", "NONE")}, id="none-among-others"),
        pytest.param(SECRET, {"algorithms": "HS256"}, id="string-not-sequence"),
        pytest.param(SECRET, {"algorithms": ("HS999",)}, id="unknown"),
        pytest.param("short", {}, id="weak-secret"),
        pytest.param(SECRET, {"algorithms": ("HS512",)}, id="secret-too-short-for-hs512"),
        pytest.param("", {}, id="empty-key"),
        pytest.param(SECRET, {"leeway_s": -1}, id="negative-leeway"),
    ],
)
def test_misconfiguration_fails_at_construction(key: str, options: dict[str, Any]) -> None:
    """Bad algorithm lists, weak or missing keys and negative leeway are UsageErrors at once."""
    with pytest.raises(UsageError):
        JwtVerifier(key, **options)


def test_hmac_and_public_key_algorithms_do_not_mix() -> None:
    """HS256 with RS256 in one verifier is refused (algorithm confusion)."""
    if "RS256" not in jwt.algorithms.get_default_algorithms():
        unavailable("cryptography is not installed: PyJWT needs it for RS256 (test extra: PyJWT[crypto])")
    with pytest.raises(UsageError, match="mix"):
        JwtVerifier(SECRET, algorithms=("HS256", "RS256"))


# -- where tokens are found ---------------------------------------------------------------------------


def request(
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
    subprotocols: tuple[str, ...] = (),
) -> HandshakeRequest:
    return HandshakeRequest(
        path="/",
        headers=headers or {},
        query_params=query or {},
        cookies=cookies or {},
        client_ip="127.0.0.1",
        subprotocols=subprotocols,
    )


@pytest.mark.parametrize(
    ("hs", "found"),
    [
        pytest.param(
            request(headers={"Authorization": "Bearer T1"}), TokenSource("T1", TokenPlace.HEADER), id="header"
        ),
        pytest.param(
            request(headers={"authorization": "bearer  T1 "}), TokenSource("T1", TokenPlace.HEADER), id="header-case"
        ),
        pytest.param(
            request(subprotocols=("wskit.v1", "bearer.T2")),
            TokenSource("T2", TokenPlace.SUBPROTOCOL, "wskit.v1"),
            id="subprotocol-with-echo",
        ),
        pytest.param(
            request(subprotocols=("bearer.T2",)), TokenSource("T2", TokenPlace.SUBPROTOCOL, None), id="subprotocol-only"
        ),
        pytest.param(
            request(headers={"Sec-WebSocket-Protocol": "bearer.T2, chat"}),
            TokenSource("T2", TokenPlace.SUBPROTOCOL, "chat"),
            id="subprotocol-header",
        ),
        pytest.param(request(query={"access_token": "T3"}), TokenSource("T3", TokenPlace.QUERY), id="query"),
        pytest.param(request(cookies={"access_token": "T4"}), TokenSource("T4", TokenPlace.COOKIE), id="cookie"),
        pytest.param(
            request(
                headers={"Authorization": "Bearer T1"}, query={"access_token": "T3"}, cookies={"access_token": "T4"}
            ),
            TokenSource("T1", TokenPlace.HEADER),
            id="header-wins",
        ),
        pytest.param(
            request(subprotocols=("bearer.T2",), query={"access_token": "T3"}),
            TokenSource("T2", TokenPlace.SUBPROTOCOL),
            id="subprotocol-before-query",
        ),
        pytest.param(
            request(query={"access_token": "T3"}, cookies={"access_token": "T4"}),
            TokenSource("T3", TokenPlace.QUERY),
            id="query-before-cookie",
        ),
        pytest.param(
            request(headers={"Authorization": "Basic dTpw"}, query={"access_token": "T3"}),
            TokenSource("T3", TokenPlace.QUERY),
            id="basic-auth-ignored",
        ),
        pytest.param(request(headers={"Authorization": "Bearer "}, subprotocols=("bearer.",)), None, id="empty-values"),
        pytest.param(request(), None, id="nothing"),
    ],
)
def test_token_from_request(hs: HandshakeRequest, found: TokenSource | None) -> None:
    """Tokens are found in the header, subprotocol, query and cookie, in that order of preference."""
    assert token_from_request(hs) == found


def test_cookie_name_is_configurable_and_can_be_turned_off() -> None:
    """cookie= names the cookie; None ignores cookies."""
    hs = request(cookies={"session": "T5", "access_token": "T4"})
    assert token_from_request(hs, cookie="session") == TokenSource("T5", TokenPlace.COOKIE)
    assert token_from_request(hs, cookie=None) is None


# -- authenticate(request) ----------------------------------------------------------------------------


def test_authenticate_gives_user_claims_and_expiry() -> None:
    """A valid token becomes connection data: user_id, claims, token_exp."""
    token = make_token({"role": "admin"})
    data = jwt_authenticate(JwtVerifier(SECRET))(request(query={"access_token": token}))
    assert data is not None
    assert data["user_id"] == "u1"
    assert data["claims"]["role"] == "admin"
    assert data["token_exp"] == jwt.decode(token, SECRET, algorithms=["HS256"])["exp"]


def test_authenticate_without_token() -> None:
    """No token: refused (None, HTTP 401), or anonymous ({}) when allowed."""
    verifier = JwtVerifier(SECRET)
    assert jwt_authenticate(verifier)(request()) is None
    assert jwt_authenticate(verifier, allow_anonymous=True)(request()) == {}


def test_authenticate_refuses_a_bad_token_even_when_anonymous_is_allowed() -> None:
    """A bad token is never downgraded to anonymous: UNAUTHENTICATED with the reason and where
    the token was, never the token itself."""
    token = make_token(ttl_s=-300)
    with pytest.raises(WsKitError) as refused:
        jwt_authenticate(JwtVerifier(SECRET), allow_anonymous=True)(request(query={"access_token": token}))
    assert refused.value.code == ErrorCode.UNAUTHENTICATED
    assert refused.value.details == {"reason": "expired"}
    assert refused.value.message == "Token expired (token from the query)"
    assert token not in str(refused.value)


# -- over a real socket -------------------------------------------------------------------------------

WhoAmI: RpcSchema[None, None] = rpc("WHOAMI", None, "YOU_ARE", None)


@pytest.fixture(params=SERVING)
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """A server on a free port whose WHOAMI answers with the connection's user in meta, once
    per way wskit is hosted (serve(), uvicorn, hypercorn, mounted in FastAPI)."""
    router: Router[Any] = Router()

    @router.rpc(WhoAmI)
    async def whoami(ctx: Context[None]) -> None:
        await ctx.reply(meta={"user": ctx.data.get("user_id")})

    async with serving(router, request.param, authenticate=jwt_authenticate(JwtVerifier(SECRET))) as found:
        yield found


async def whoami(ws: ClientConnection) -> Any:
    await ws.send(json.dumps({"type": "WHOAMI", "meta": {"correlationId": "1"}}))
    return json.loads(await ws.recv())["meta"]["user"]


@pytest.mark.parametrize("place", list(TokenPlace))
async def test_valid_token_upgrades_and_sets_the_user(server: Served, place: TokenPlace) -> None:
    """With a valid token in any of the four places, the upgrade succeeds and ctx.data["user_id"] is set."""
    token = make_token(sub="alice")
    url, options = server.url, dict[str, Any]()
    if place is TokenPlace.HEADER:
        options = {"additional_headers": {"Authorization": f"Bearer {token}"}}
    elif place is TokenPlace.COOKIE:
        options = {"additional_headers": {"Cookie": f"access_token={token}"}}
    elif place is TokenPlace.SUBPROTOCOL:
        options = {"subprotocols": ["wskit", f"bearer.{token}"]}
    else:
        url = f"{url}?access_token={token}"
    async with connect(url, open_timeout=5, **options) as ws:
        assert ws.response is not None and ws.response.headers.get("x-client-id")
        assert await whoami(ws) == "alice"


@pytest.mark.parametrize(
    "token",
    [make_token(ttl_s=-300), make_token(key=OTHER_SECRET), "garbage"],
    ids=["expired", "wrong-key", "garbage"],
)
async def test_bad_token_is_refused_with_401(server: Served, token: str) -> None:
    """An invalid token gets HTTP 401 at the upgrade."""
    with pytest.raises(InvalidStatus) as raised:
        async with connect(f"{server.url}?access_token={token}", open_timeout=5):
            pass
    assert raised.value.response.status_code == 401


async def test_missing_token_is_refused_with_401(server: Served) -> None:
    """Without a token (and without allow_anonymous) the upgrade gets HTTP 401."""
    with pytest.raises(InvalidStatus) as raised:
        async with connect(server.url, open_timeout=5):
            pass
    assert raised.value.response.status_code == 401
