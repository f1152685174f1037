"""Guards: who may connect and send (JWT authentication), and how much (rate limits).

Everything here is middleware or an ``authenticate`` callable, so an application composes
the guards it needs::

    from wskit.guards import JwtVerifier, auth_routes, jwt_authenticate, rate_limit, require_auth

    verifier = JwtVerifier(secret, audience="chat")
    router.include(auth_routes(verifier))                       # AUTH message flow (browsers)
    router.use(require_auth)                                    # nothing runs before auth
    router.use(rate_limit(MemoryRateLimiter(*per_minute(120)))) # 120/min per user (or IP)
    serve(router, authenticate=jwt_authenticate(verifier, allow_anonymous=True))

PyJWT (``wskit[jwt]``) and redis-py (``wskit[redis]``) are imported only when a
:class:`JwtVerifier` or :class:`RedisRateLimiter` is built.
"""

from __future__ import annotations

from wskit.guards.auth import (
    AUTH_EXPIRED_MESSAGE,
    AUTH_REQUIRED_MESSAGE,
    Auth,
    AuthOk,
    AuthRequest,
    RequireAuth,
    auth_routes,
    require_auth,
    token_expired,
)
from wskit.guards.jwt import (
    DEFAULT_LEEWAY_S,
    MAX_TOKEN_LENGTH,
    JwtVerifier,
    TokenPlace,
    TokenSource,
    connection_data,
    jwt_authenticate,
    token_from_request,
)
from wskit.guards.ratelimit import (
    Decision,
    KeyFunc,
    MemoryRateLimiter,
    Rate,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
    by_connection,
    by_ip,
    by_type,
    by_user_or_connection,
    by_user_or_ip,
    per_minute,
    per_second,
    rate_limit,
)

__all__ = [
    "AUTH_EXPIRED_MESSAGE",
    "AUTH_REQUIRED_MESSAGE",
    "DEFAULT_LEEWAY_S",
    "MAX_TOKEN_LENGTH",
    "Auth",
    "AuthOk",
    "AuthRequest",
    "Decision",
    "JwtVerifier",
    "KeyFunc",
    "MemoryRateLimiter",
    "Rate",
    "RateLimit",
    "RateLimiter",
    "RedisRateLimiter",
    "RequireAuth",
    "TokenPlace",
    "TokenSource",
    "auth_routes",
    "by_connection",
    "by_ip",
    "by_type",
    "by_user_or_connection",
    "by_user_or_ip",
    "connection_data",
    "jwt_authenticate",
    "per_minute",
    "per_second",
    "rate_limit",
    "require_auth",
    "token_expired",
    "token_from_request",
]
