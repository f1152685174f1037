"""The guards ``serve()`` builds from its settings: ``JWT_SECRET`` and ``MESSAGE_RATE_LIMIT``.

Kept apart from the server so that the server imports PyJWT and redis-py only when these
settings ask for them, and so that the rules (who is anonymous, which key a rate counts
against) live beside the guards they configure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wskit.config import ConfigError, Settings
from wskit.errors import UsageError
from wskit.guards.auth import Auth, auth_routes
from wskit.guards.jwt import JwtVerifier, check_algorithms, jwt_authenticate
from wskit.guards.ratelimit import (
    MemoryRateLimiter,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
    by_user_or_connection,
    per_minute,
    rate_limit,
)
from wskit.router import Router
from wskit.transports.base import HandshakeRequest

__all__ = ["jwt_guard", "jwt_setup", "jwt_verifier", "message_rate_guard"]


def jwt_verifier(settings: Settings) -> JwtVerifier:
    """The verifier of ``JWT_SECRET``, ``JWT_ALGORITHMS``, ``JWT_AUDIENCE``, ``JWT_ISSUER`` and ``JWT_LEEWAY_S``.

    Raises :class:`~wskit.config.ConfigError` naming ``JWT_SECRET`` when it is missing or too
    weak for the algorithms (HS256 needs 32 bytes), or ``JWT_ALGORITHMS`` when it names
    ``none``, an unknown algorithm, or mixes HMAC with public-key ones.
    """
    if not settings.jwt_secret:
        raise ConfigError("JWT_SECRET is not set")
    try:
        check_algorithms(settings.jwt_algorithms)
    except UsageError as exc:
        raise ConfigError(f"JWT_ALGORITHMS: {exc}") from exc
    try:
        return JwtVerifier(
            settings.jwt_secret,
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_s=settings.jwt_leeway_s,
        )
    except UsageError as exc:  # the algorithms passed: what is left is about the key
        raise ConfigError(f"JWT_SECRET: {exc}") from exc


def jwt_setup(router: Router[Any], settings: Settings) -> Callable[[HandshakeRequest], dict[str, Any] | None]:
    """JWT at the upgrade and by ``AUTH`` message: adds the ``AUTH`` route, returns ``authenticate``.

    A token at the upgrade (header, ``bearer.`` subprotocol, ``access_token`` query or
    cookie) must be valid (else HTTP 401). A connection without one is let in anonymous, so a
    browser can send ``AUTH`` as its first message; ``AUTH_TIMEOUT_MS`` closes those that
    never do, and ``require_auth`` keeps them out of protected routes. An application that
    registered its own ``AUTH`` handler keeps it.
    """
    verifier = jwt_verifier(settings)
    if Auth.type not in router.routes:
        router.include(auth_routes(verifier))
    return jwt_authenticate(verifier, allow_anonymous=True)


def jwt_guard(
    settings: Settings, router: Router[Any]
) -> tuple[Callable[[HandshakeRequest], dict[str, Any] | None], Router[Any] | None]:
    """What ``JWT_SECRET`` adds to a served router, without changing it: the upgrade's
    ``authenticate`` (see :func:`jwt_setup`) and the router of the ``AUTH`` route to serve
    beside the application's (None when the application has its own ``AUTH`` handler)."""
    verifier = jwt_verifier(settings)
    routes = None if Auth.type in router.routes else auth_routes(verifier)
    return jwt_authenticate(verifier, allow_anonymous=True), routes


def message_rate_guard(settings: Settings) -> RateLimit:
    """``MESSAGE_RATE_LIMIT`` messages per minute per user (per connection when anonymous).

    Bursts of up to the limit, refilled evenly over the minute. With ``REDIS_URL`` the budget
    is shared by every worker and instance (a user's connections to different processes
    count together); the limiter fails open when Redis is down. Close it with ``aclose()``.
    """
    capacity, refill_per_s = per_minute(settings.message_rate_limit)
    limiter: RateLimiter = (
        RedisRateLimiter(settings.redis_url, capacity, refill_per_s)
        if settings.redis_url
        else MemoryRateLimiter(capacity, refill_per_s)
    )
    return rate_limit(limiter, key=by_user_or_connection)
