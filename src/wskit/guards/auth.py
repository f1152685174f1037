"""Authentication by message (the ``AUTH`` flow), the ``require_auth`` middleware, token expiry.

Browsers cannot set headers on a WebSocket upgrade, and a token in the URL ends up in access
logs, so a browser may connect anonymously and send its token as the first message::

    router.include(auth_routes(verifier))          # handles AUTH -> AUTH_OK
    router.use(require_auth)                       # every other message needs a user

    # client: {"type":"AUTH","meta":{"correlationId":"1"},"payload":{"token":"..."}}
    # server: {"type":"AUTH_OK","meta":{"correlationId":"1"},"payload":{"user_id":"u1","expires_at":...}}

A connection is authenticated once ``ctx.data["user_id"]`` is set, by ``authenticate`` at
the upgrade or by ``AUTH``. Sending ``AUTH`` again with a fresh token for the same user
extends a long session (``token_exp`` moves); a token for another user is refused
(``PERMISSION_DENIED``): one connection, one identity, so nothing sent under the first user
is attributed to the second. Closing connections whose token ran out (1008) is the server's
timer, built on :func:`token_expired`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Final

from pydantic import BaseModel, Field

from wskit.context import Context
from wskit.errors import CloseCode, ErrorCode, WsKitError
from wskit.guards.jwt import DEFAULT_LEEWAY_S, MAX_TOKEN_LENGTH, JwtVerifier, connection_data
from wskit.logs import LogBudget
from wskit.router import Router
from wskit.schema.declarations import RpcSchema, rpc

__all__ = [
    "AUTH_EXPIRED_MESSAGE",
    "AUTH_REQUIRED_MESSAGE",
    "Auth",
    "AuthOk",
    "AuthRequest",
    "RequireAuth",
    "auth_routes",
    "require_auth",
    "token_expired",
]

log = logging.getLogger("wskit.guards.auth")

AUTH_REQUIRED_MESSAGE: Final = "Authentication required"
AUTH_EXPIRED_MESSAGE: Final = "Token expired; send AUTH with a fresh token"


class AuthRequest(BaseModel):
    """Payload of ``AUTH``: the bearer token (a JWT)."""

    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


class AuthOk(BaseModel):
    """Payload of ``AUTH_OK``: who the connection now is, and until when (epoch seconds)."""

    user_id: str
    expires_at: int | None


#: ``AUTH`` (request) answered by ``AUTH_OK``, or ``RPC_ERROR`` ``UNAUTHENTICATED``/``PERMISSION_DENIED``.
Auth: Final[RpcSchema[AuthRequest, AuthOk]] = rpc("AUTH", AuthRequest, "AUTH_OK", AuthOk)


def token_expired(data: Mapping[str, Any], now: float | None = None, *, leeway_s: float = DEFAULT_LEEWAY_S) -> bool:
    """Whether the connection's token (``data["token_exp"]``) has run out at ``now``.

    ``now`` is in seconds since the epoch (default: ``time.time()``); ``leeway_s`` should be
    the verifier's, so that a token accepted at the edge of its life is not refused at once.
    False without ``token_exp`` (a token without expiry, or data from another ``authenticate``).
    """
    exp = data.get("token_exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return False
    return (time.time() if now is None else now) >= exp + leeway_s


class RequireAuth:
    """Middleware: refuse the message with ``UNAUTHENTICATED`` unless the connection has a user.

    Also refuses when the connection's token has expired (``data["token_exp"]`` plus
    ``leeway_s`` is past), asking for a fresh ``AUTH``. ``leeway_s`` None (the default) is
    the server's ``JWT_LEEWAY_S``, the allowance its expiry timer grants too (30 s outside a
    server). Messages whose type is in ``exempt``
    (default: ``AUTH``, the way in) pass, so it can be installed globally with
    ``router.use(require_auth)`` or per route with ``router.on(Msg, middleware=[require_auth])``.
    The handler never runs for a refused message.
    """

    __slots__ = ("exempt", "leeway_s")

    #: says to the server, which checks at start that something can sign a connection in,
    #: that this middleware refuses anonymous connections (no import of this class needed)
    requires_user = True

    def __init__(self, *, leeway_s: float | None = None, exempt: Collection[str] = ("AUTH",)) -> None:
        self.leeway_s = leeway_s
        self.exempt = frozenset(exempt)

    async def __call__(self, ctx: Context[Any, Any], call_next: Callable[[], Awaitable[None]]) -> None:
        if ctx.type not in self.exempt:
            data = ctx.data
            if data.get("user_id") is None:
                raise WsKitError(ErrorCode.UNAUTHENTICATED, AUTH_REQUIRED_MESSAGE)
            leeway = self.leeway_s
            if leeway is None:
                # one allowance per server: refusing messages at another moment than the
                # watchdog closes the connection would be two expiries for one token
                leeway = getattr(ctx.connection.watchdog, "token_leeway_s", DEFAULT_LEEWAY_S)
            if token_expired(data, leeway_s=leeway):
                raise WsKitError(ErrorCode.UNAUTHENTICATED, AUTH_EXPIRED_MESSAGE, details={"reason": "expired"})
        await call_next()

    def __repr__(self) -> str:
        return f"RequireAuth(leeway_s={self.leeway_s}, exempt={sorted(self.exempt)})"


#: :class:`RequireAuth` with the server's leeway (``JWT_LEEWAY_S``, 30 s) and ``AUTH`` exempt.
require_auth: Final = RequireAuth()


def auth_routes(verifier: JwtVerifier) -> Router[Any]:
    """A router handling :data:`Auth`; include it in the application's router.

    The handler verifies the token and assigns ``user_id``, ``claims`` and ``token_exp`` to the
    connection, then answers ``AUTH_OK``. Raises (answered as ``RPC_ERROR``):
    ``UNAUTHENTICATED`` when the token fails verification (the connection keeps its previous
    identity, if any); ``PERMISSION_DENIED`` when the token is for another user than the one
    the connection is already authenticated as. A banned user (``router.ban_user``) gets
    ``PERMISSION_DENIED`` ``{reason: "banned"}`` and the connection is closed with 1008
    ``banned``: the ban check at the upgrade cannot see who signs in later.
    """
    router: Router[Any] = Router()

    async def authenticate_message(ctx: Context[AuthRequest]) -> None:
        claims = verifier.verify(ctx.payload.token)
        data = connection_data(verifier, claims)
        current = ctx.data.get("user_id")
        if current is not None and str(current) != data["user_id"]:
            raise WsKitError(ErrorCode.PERMISSION_DENIED, "This connection is authenticated as another user")
        if await _banned(ctx, data["user_id"]):
            await ctx.error(ErrorCode.PERMISSION_DENIED, "This user is banned", details={"reason": "banned"})
            await ctx.close(CloseCode.POLICY_VIOLATION, "banned")
            return
        ctx.assign_data(**data)
        await ctx.reply(AuthOk(user_id=data["user_id"], expires_at=data["token_exp"]))

    router.rpc(Auth, authenticate_message)
    return router


_BAN_CHECK_FAILURES = LogBudget()


async def _banned(ctx: Context[Any, Any], user_id: str) -> bool:
    """Whether the broker's ban list has ``user_id``; False (fail open) when it cannot say."""
    try:
        return await ctx.runtime.hub.broker.is_banned(user_id)
    except Exception as exc:  # noqa: BLE001 - a Redis outage must not lock every user out
        tail = _BAN_CHECK_FAILURES.take()  # one per AUTH for as long as the outage lasts
        if tail is not None:
            log.warning("ban check for user %s failed (%s); letting the AUTH through%s", user_id, exc, tail)
        return False
