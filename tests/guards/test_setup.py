"""The guards serve() builds from JWT_SECRET and MESSAGE_RATE_LIMIT."""

from __future__ import annotations

from typing import Any

import pytest
from tests.guards.conftest import SECRET, make_token

from wskit import HandshakeRequest, Router, WsKitError
from wskit.config import ConfigError, Settings
from wskit.guards import Auth, MemoryRateLimiter, RedisRateLimiter
from wskit.guards.setup import jwt_setup, jwt_verifier, message_rate_guard


def test_jwt_verifier_follows_the_settings() -> None:
    """JWT_AUDIENCE and JWT_ISSUER become required claims of the verifier."""
    verifier = jwt_verifier(Settings(jwt_secret=SECRET, jwt_audience="chat", jwt_issuer="me"))
    assert verifier.verify(make_token({"aud": "chat", "iss": "me"}))["sub"] == "u1"
    assert (verifier.audience, verifier.issuer, verifier.algorithms) == ("chat", "me", ("HS256",))


@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        (Settings(jwt_secret="sixteen-chars-xx"), "JWT_SECRET"),
        (Settings(jwt_secret=SECRET, jwt_algorithms=("none",)), "JWT_ALGORITHMS"),
        (Settings(jwt_secret=SECRET, jwt_algorithms=("HS999",)), "JWT_ALGORITHMS"),
        (Settings(), "JWT_SECRET"),
    ],
    ids=["weak-secret", "alg-none", "unknown-alg", "no-secret"],
)
def test_bad_jwt_settings_name_the_variable(settings: Settings, variable: str) -> None:
    """A weak secret or a bad algorithm list fails with a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=variable):
        jwt_verifier(settings)


def test_jwt_setup_adds_auth_and_lets_anonymous_in() -> None:
    """jwt_setup adds the AUTH route once; its authenticate admits anonymous and valid tokens, refuses bad ones."""
    router: Router[Any] = Router()
    authenticate = jwt_setup(router, Settings(jwt_secret=SECRET))
    jwt_setup(router, Settings(jwt_secret=SECRET))  # a restarted server: no duplicate route
    assert Auth.type in router.routes
    assert authenticate(HandshakeRequest(path="/", headers={})) == {}
    good = authenticate(HandshakeRequest(path="/", headers={}, query_params={"access_token": make_token()}))
    assert good is not None and good["user_id"] == "u1"
    bad = HandshakeRequest(path="/", headers={}, query_params={"access_token": "garbage"})
    with pytest.raises(WsKitError, match="Malformed token"):
        authenticate(bad)  # a refusal with its reason (HTTP 401)


async def test_message_rate_guard_in_memory() -> None:
    """Without REDIS_URL the guard keeps buckets in memory: the limit per minute, refilled over the minute."""
    guard = message_rate_guard(Settings(message_rate_limit=120))
    assert isinstance(guard.limiter, MemoryRateLimiter)
    assert (guard.limiter.capacity, guard.limiter.refill_per_s) == (120, 2.0)
    await guard.aclose()


async def test_message_rate_guard_on_redis(redis_url: str) -> None:
    """With REDIS_URL the guard's buckets live in Redis (shared by every worker)."""
    guard = message_rate_guard(Settings(message_rate_limit=60, redis_url=redis_url))
    try:
        assert isinstance(guard.limiter, RedisRateLimiter)
        assert (await guard.limiter.take("setup-test")).allowed
    finally:
        await guard.aclose()
