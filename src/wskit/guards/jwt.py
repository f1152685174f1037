"""JWT authentication: verify tokens, find them in an upgrade request, authenticate at upgrade.

Why it is built this way:

- **Algorithms are pinned.** A verifier accepts only the algorithms it was built with, never
  ``none``, and never HMAC and public-key algorithms together (the classic confusion attack
  signs with the public key as an HMAC secret). The algorithm named in a token's header
  only selects among the pinned ones.
- **Clear reasons, one code.** Every refusal is ``UNAUTHENTICATED`` with a message a person
  understands ("Token expired") and ``details.reason`` a client can branch on (``"expired"``:
  fetch a fresh token and send ``AUTH`` again).
- **Weak secrets fail at start.** An HMAC secret shorter than its hash (RFC 7518 §3.2) is a
  :class:`~wskit.errors.UsageError` when the verifier is built, not a warning per message.
- **PyJWT is optional.** It is imported when a verifier is built, so ``require_auth`` and the
  rate limiters work without it (``pip install 'wskit[jwt]'``).

Tokens are looked for, in this order: ``Authorization: Bearer``, the ``bearer.<token>``
WebSocket subprotocol, the ``access_token`` query parameter (what the WS-Kit client sends),
then a cookie. A cookie is sent by the browser on its own, so a deployment that accepts it
must also check ``Origin`` (``ALLOWED_ORIGINS``) against cross-site WebSocket hijacking.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from wskit.errors import ErrorCode, UsageError, WsKitError
from wskit.transports.base import HandshakeRequest, chosen_subprotocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

__all__ = [
    "DEFAULT_LEEWAY_S",
    "MAX_TOKEN_LENGTH",
    "JwtVerifier",
    "TokenPlace",
    "TokenSource",
    "check_algorithms",
    "connection_data",
    "jwt_authenticate",
    "token_from_request",
]

log = logging.getLogger("wskit.guards.jwt")

#: Default tolerance, in seconds, for clocks of the token issuer and this server that disagree.
DEFAULT_LEEWAY_S: Final = 30.0
#: Longer tokens are refused as malformed before any decoding (bounded work per attempt).
MAX_TOKEN_LENGTH: Final = 8192

_SUBPROTOCOL_PREFIX = "bearer."
#: claims holding a time, which RFC 7519 says are numbers
_NUMERIC_DATES: Final = ("exp", "nbf", "iat")


def _import_jwt() -> ModuleType:
    try:
        import jwt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("JWT authentication needs PyJWT: pip install 'wskit[jwt]'") from exc
    return jwt


def _refusal(reason: str, message: str) -> WsKitError:
    return WsKitError(ErrorCode.UNAUTHENTICATED, message, details={"reason": reason})


def check_algorithms(algorithms: Sequence[str]) -> tuple[str, ...]:
    """``algorithms`` as a tuple, once they can be pinned safely.

    Raises :class:`~wskit.errors.UsageError` for a bare string, an empty list, ``none``, a
    name PyJWT does not know (public-key ones need ``PyJWT[crypto]``), or HMAC mixed with
    public-key algorithms (the confusion attack).
    """
    if isinstance(algorithms, str):
        raise UsageError("algorithms must be a sequence of names, e.g. ('HS256',)")
    names = tuple(algorithms)
    if not names:
        raise UsageError("JwtVerifier needs at least one algorithm")
    if any(name.lower() == "none" for name in names):
        raise UsageError("the 'none' JWT algorithm is never accepted")
    known = _import_jwt().algorithms.get_default_algorithms()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(
            f"unknown or unavailable JWT algorithms {unknown} (public-key algorithms need pip install 'PyJWT[crypto]')"
        )
    hmac = [name.startswith("HS") for name in names]
    if any(hmac) and not all(hmac):
        raise UsageError("do not mix HMAC (HS*) and public-key algorithms in one verifier")
    return names


class JwtVerifier:
    """Checks JSON Web Tokens: signature with a pinned algorithm, then ``exp``/``nbf``/``aud``/``iss``.

    ``key``: the HMAC secret (``str``/``bytes``), or a public key for RS*/ES*/PS*/EdDSA (those
    need ``cryptography``: ``pip install 'PyJWT[crypto]'``). Options (keyword-only):
    ``algorithms`` (default ``("HS256",)``); ``audience`` and ``issuer`` (None: a token that
    names an audience is refused, since it is meant for some other service); ``leeway_s``
    (default 30: clock skew allowed on ``exp``/``nbf``/``iat``); ``require`` (claims that must
    be present, default ``("exp",)``); ``user_claim`` (default ``"sub"``: the claim holding the
    user id, always required; a string, or an integer taken as its decimal string).

    Raises :class:`~wskit.errors.UsageError` at construction for an empty or unknown algorithm
    list, ``none``, HMAC mixed with public-key algorithms, or an HMAC secret shorter than its
    hash.
    """

    def __init__(
        self,
        key: Any,
        *,
        algorithms: Sequence[str] = ("HS256",),
        audience: str | Iterable[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        leeway_s: float = DEFAULT_LEEWAY_S,
        require: Sequence[str] = ("exp",),
        user_claim: str = "sub",
    ) -> None:
        jwt = _import_jwt()
        names = check_algorithms(algorithms)
        known = jwt.algorithms.get_default_algorithms()
        if key is None or key in ("", b""):
            raise UsageError("JwtVerifier needs a key (the HMAC secret or the public key)")
        for name in names:
            algorithm = known[name]
            check = getattr(algorithm, "check_key_length", None)  # PyJWT >= 2.10
            problem = check(algorithm.prepare_key(key)) if check is not None else None
            if problem:
                raise UsageError(f"JWT key too weak: {problem}")
        if leeway_s < 0:
            raise UsageError("leeway_s must be >= 0")
        self._jwt = jwt
        self.key = key
        self.algorithms = names
        self.audience = audience
        self.issuer = issuer
        self.leeway_s = float(leeway_s)
        self.user_claim = user_claim
        self.require = tuple(dict.fromkeys((*require, user_claim)))

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once every check passed.

        Raises :class:`~wskit.errors.WsKitError` ``UNAUTHENTICATED`` with a clear message and
        ``details.reason``: ``malformed``, ``algorithm``, ``signature``, ``expired``,
        ``not_yet_valid``, ``audience``, ``issuer``, ``missing_claim`` or ``invalid``.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise _refusal("malformed", "Malformed token")
        errors = self._jwt.exceptions
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                self.key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                # the user claim is checked below: an integer ``sub`` is accepted, which
                # PyJWT >= 2.10 refuses on its own
                options={"require": list(self.require), "verify_sub": False},
            )
        except errors.ExpiredSignatureError:
            raise _refusal("expired", "Token expired") from None
        except errors.ImmatureSignatureError:
            raise _refusal("not_yet_valid", "Token not yet valid") from None
        except errors.InvalidAudienceError:
            raise _refusal("audience", "Token has the wrong audience") from None
        except errors.InvalidIssuerError:
            raise _refusal("issuer", "Token has the wrong issuer") from None
        except errors.MissingRequiredClaimError as exc:
            raise _refusal("missing_claim", f"Token lacks the required {exc.claim!r} claim") from None
        except errors.InvalidAlgorithmError:
            raise _refusal("algorithm", "Token algorithm not allowed") from None
        except errors.InvalidSignatureError:
            raise _refusal("signature", "Token signature is invalid") from None
        except errors.DecodeError:
            raise _refusal("malformed", "Malformed token") from None
        except errors.InvalidKeyError as exc:
            log.error("JWT key cannot verify %s tokens: %s", self.algorithms, exc)
            raise _refusal("invalid", "Token could not be verified") from None
        except errors.InvalidTokenError as exc:
            raise _refusal("invalid", f"Invalid token: {exc}") from None
        for claim in _NUMERIC_DATES:
            value = claims.get(claim)
            # RFC 7519 §2: a NumericDate is a JSON number. PyJWT reads "exp": "1796..." as an
            # int, but wskit's own expiry watch would not, and the connection would outlive it
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise _refusal("malformed", f"Token claim {claim!r} must be a number (seconds since the epoch)")
        user = claims.get(self.user_claim)
        if not (isinstance(user, str) and user) and not (isinstance(user, int) and not isinstance(user, bool)):
            raise _refusal("missing_claim", f"Token claim {self.user_claim!r} must be a non-empty string or an integer")
        return claims

    def user_id(self, claims: Mapping[str, Any]) -> str:
        """The user id carried by verified ``claims`` (``claims[user_claim]``)."""
        return str(claims[self.user_claim])

    def __repr__(self) -> str:
        return f"<JwtVerifier algorithms={list(self.algorithms)} audience={self.audience!r} issuer={self.issuer!r}>"


def connection_data(verifier: JwtVerifier, claims: Mapping[str, Any]) -> dict[str, Any]:
    """The connection data of a verified token: ``user_id``, ``claims`` and ``token_exp``.

    ``token_exp`` is the ``exp`` claim in seconds since the epoch (rounded down to an int),
    None when the token has none; :func:`wskit.guards.auth.token_expired` reads it.
    """
    exp = claims.get("exp")
    token_exp = math.floor(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    return {"user_id": verifier.user_id(claims), "claims": dict(claims), "token_exp": token_exp}


class TokenPlace(StrEnum):
    """Where in the upgrade request a token was found."""

    HEADER = "header"
    SUBPROTOCOL = "subprotocol"
    QUERY = "query"
    COOKIE = "cookie"


@dataclass(frozen=True, slots=True)
class TokenSource:
    """A token found in an upgrade request, and where.

    ``subprotocol``: for :attr:`TokenPlace.SUBPROTOCOL`, the first offered subprotocol that is
    not a token, which the server should echo back (browsers fail the connection when the
    server selects none of the offered ones); never echo the ``bearer.`` one (it would leak
    the token into logs).
    """

    token: str
    place: TokenPlace
    subprotocol: str | None = None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _offered_subprotocols(request: HandshakeRequest) -> tuple[str, ...]:
    if request.subprotocols:
        return request.subprotocols
    raw = _header(request.headers, "Sec-WebSocket-Protocol") or ""
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def token_from_request(
    request: HandshakeRequest, *, cookie: str | None = "access_token", query_param: str | None = "access_token"
) -> TokenSource | None:
    """The bearer token of an upgrade request, or None when it carries none.

    Looked for in this order: ``Authorization: Bearer <token>`` (other schemes are ignored,
    they may be a proxy's), the ``bearer.<token>`` subprotocol, the ``query_param`` query
    parameter, the ``cookie`` cookie (None turns a place off). An empty value counts as none.
    """
    authorization = _header(request.headers, "Authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return TokenSource(value.strip(), TokenPlace.HEADER)
    offered = _offered_subprotocols(request)
    bearer = next((p for p in offered if p.lower().startswith(_SUBPROTOCOL_PREFIX)), None)
    if bearer is not None and len(bearer) > len(_SUBPROTOCOL_PREFIX):
        echo = chosen_subprotocol(offered)
        return TokenSource(bearer[len(_SUBPROTOCOL_PREFIX) :], TokenPlace.SUBPROTOCOL, echo)
    if query_param is not None:
        query = request.query_params.get(query_param)
        if query:
            return TokenSource(query, TokenPlace.QUERY)
    if cookie is not None:
        cookie_value = request.cookies.get(cookie)
        if cookie_value:
            return TokenSource(cookie_value, TokenPlace.COOKIE)
    return None


def jwt_authenticate(
    verifier: JwtVerifier, *, allow_anonymous: bool = False, cookie: str | None = "access_token"
) -> Callable[[HandshakeRequest], dict[str, Any] | None]:
    """An ``authenticate(request)`` for ``serve()``/``Server``: the upgrade's token decides.

    A valid token gives the connection ``{"user_id", "claims", "token_exp"}`` (see
    :func:`connection_data`). A request without a token gets ``{}`` (anonymous) when
    ``allow_anonymous``, else None (HTTP 401). A token that fails verification is always
    refused, even with ``allow_anonymous`` (a client that believes it is signed in must not
    be quietly treated as anonymous): it raises :class:`~wskit.errors.WsKitError`
    ``UNAUTHENTICATED`` with the reason (``details.reason``: ``expired``, ``signature``...),
    which the server answers with HTTP 401 and logs in its one line for the refusal, never
    with the token.
    """

    def authenticate(request: HandshakeRequest) -> dict[str, Any] | None:
        source = token_from_request(request, cookie=cookie)
        if source is None:
            return {} if allow_anonymous else None
        try:
            claims = verifier.verify(source.token)
        except WsKitError as exc:
            raise WsKitError(exc.code, f"{exc.message} (token from the {source.place})", details=exc.details) from None
        return connection_data(verifier, claims)

    return authenticate
