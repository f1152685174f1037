"""Token tricks: claims of the wrong type, and a JWT_SECRET that an app's authenticate= replaces.

Found by a hostile tester: ``"exp": "<a number as a string>"`` was accepted at the upgrade and
never enforced afterwards (PyJWT reads the string, wskit's expiry watch did not, so the
connection outlived the token); an integer ``sub``, which the docs accept, was refused; and an
app passing its own ``authenticate=`` silently switched off ``JWT_SECRET``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from tests.guards.conftest import SECRET, make_token
from tests.production.conftest import request, ws_client
from websockets.exceptions import InvalidStatus

from wskit import Server
from wskit.guards.jwt import JwtVerifier


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_a_time_claim_given_as_a_string_is_refused(make_server: Any, claim: str) -> None:
    """A NumericDate claim that is a string of digits: HTTP 401 at the upgrade, UNAUTHENTICATED
    {reason: malformed} by AUTH."""
    server: Server = await make_server(jwt_secret=SECRET)
    claims = {claim: str(int(time.time()) + (300 if claim == "exp" else -10))}
    token = make_token(claims)
    with pytest.raises(InvalidStatus) as refused:
        async with ws_client(server.url + f"?access_token={token}"):
            pass
    assert refused.value.response.status_code == 401
    async with ws_client(server.url) as ws:
        answer = await request(ws, "AUTH", {"token": token})
        assert answer["payload"]["code"] == "UNAUTHENTICATED"
        assert answer["payload"]["details"] == {"reason": "malformed"}


async def test_an_integer_subject_is_the_user_id(make_server: Any) -> None:
    """``sub: 42`` authenticates user "42", at the upgrade and by AUTH, as the docs say."""
    server: Server = await make_server(jwt_secret=SECRET)
    token = make_token({"sub": 42})
    async with ws_client(server.url + f"?access_token={token}"):
        (conn,) = server.router.hub.connections.values()
        assert conn.user_id == "42"
    async with ws_client(server.url) as ws:
        ok = await request(ws, "AUTH", {"token": token})
        assert ok["type"] == "AUTH_OK" and ok["payload"]["user_id"] == "42"


@pytest.mark.parametrize("sub", [True, 4.5, ["u"], ""])
def test_other_subjects_are_refused(sub: Any) -> None:
    """Booleans, floats, lists and the empty string are not user ids."""
    verifier = JwtVerifier(SECRET)
    with pytest.raises(Exception, match="must be a non-empty string or an integer"):
        verifier.verify(make_token({"sub": sub}))


async def test_authenticate_replacing_jwt_secret_is_said_at_start(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """JWT_SECRET and authenticate= together: a WARNING says that the app's authenticate decides
    and wskit verifies no token itself; a valid token is not checked by wskit (the app's rule)."""
    caplog.set_level(logging.WARNING, logger="wskit")
    server: Server = await make_server(jwt_secret=SECRET, authenticate=lambda request: {"user_id": "app"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("JWT_SECRET is set but authenticate= was given" in w for w in warnings)
    async with ws_client(server.url + "?access_token=not-a-jwt"):
        (conn,) = server.router.hub.connections.values()
        assert conn.user_id == "app"
