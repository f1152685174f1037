"""Reconnect or stop: the one table that decides what a lost connection means.

A server that closes with 1008 (policy: banned, token revoked) or refuses the upgrade with
401/403 would refuse again; a client that keeps dialling only hammers it (WS-Kit's own client
does). Transient failures (restarts, overload, network loss) are retried with backoff.
``docs/client.md`` prints this table; ``tests/client/test_verdicts.py`` checks every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from wskit.errors import ErrorCode

__all__ = ["CLOSE_CODES", "HTTP_STATUSES", "Decision", "Verdict", "after_close", "after_refusal"]


class Verdict(Enum):
    """What the client does next."""

    RECONNECT = "reconnect"
    STOP = "stop"
    #: stop, unless the token provider now yields a different token (then reconnect with it)
    STOP_UNLESS_NEW_TOKEN = "stop-unless-new-token"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    #: the wire code of the ClientStopped raised when the verdict stops the client
    code: ErrorCode
    why: str


_R = Verdict.RECONNECT
_S = Verdict.STOP

#: close code -> decision (codes not listed: see :func:`after_close`)
CLOSE_CODES: dict[int, Decision] = {
    1000: Decision(_R, ErrorCode.UNAVAILABLE, "the server ended the session normally (idle timeout, restart)"),
    1001: Decision(_R, ErrorCode.UNAVAILABLE, "the server is going away (shutdown or deploy)"),
    1002: Decision(_S, ErrorCode.INVALID_ARGUMENT, "the server says this client broke the WebSocket protocol"),
    1003: Decision(_S, ErrorCode.INVALID_ARGUMENT, "the server cannot accept the data this client sends"),
    1005: Decision(_R, ErrorCode.UNAVAILABLE, "closed without a status code"),
    1006: Decision(_R, ErrorCode.UNAVAILABLE, "the connection dropped without a close frame"),
    1007: Decision(_S, ErrorCode.INVALID_ARGUMENT, "the server received a text frame that is not UTF-8"),
    1008: Decision(_S, ErrorCode.PERMISSION_DENIED, "policy: auth timeout, revoked or expired token, or banned"),
    1009: Decision(_S, ErrorCode.RESOURCE_EXHAUSTED, "a message this client sent is over the server's size limit"),
    1010: Decision(_S, ErrorCode.INVALID_ARGUMENT, "the server lacks an extension this client requires"),
    1011: Decision(_R, ErrorCode.UNAVAILABLE, "internal error on the server"),
    1012: Decision(_R, ErrorCode.UNAVAILABLE, "the server is restarting"),
    1013: Decision(_R, ErrorCode.UNAVAILABLE, "the server is overloaded or this client was too slow: try again later"),
    1014: Decision(_R, ErrorCode.UNAVAILABLE, "a gateway got a bad answer from the server"),
    1015: Decision(_S, ErrorCode.UNAVAILABLE, "the TLS handshake failed"),
}

#: HTTP status of a refused upgrade -> decision (others: see :func:`after_refusal`)
HTTP_STATUSES: dict[int, Decision] = {
    400: Decision(_S, ErrorCode.INVALID_ARGUMENT, "the server refused the upgrade request as malformed"),
    401: Decision(Verdict.STOP_UNLESS_NEW_TOKEN, ErrorCode.UNAUTHENTICATED, "the server needs a valid token"),
    403: Decision(Verdict.STOP_UNLESS_NEW_TOKEN, ErrorCode.PERMISSION_DENIED, "forbidden (origin, ban or identity)"),
    404: Decision(_S, ErrorCode.NOT_FOUND, "nothing serves WebSockets at this URL"),
    408: Decision(_R, ErrorCode.UNAVAILABLE, "the server timed the handshake out"),
    429: Decision(_R, ErrorCode.RESOURCE_EXHAUSTED, "too many connections: wait (Retry-After) and retry"),
}


def after_close(code: int) -> Decision:
    """The decision after the server closed an open connection with ``code``.

    Application codes (3000-4999) stop: the application closed this client on purpose
    (``disconnect_user``: a kick) and only it knows what they mean; reconnect by calling
    ``connect()`` again, or list codes to retry in ``Client(reconnect_codes=...)``.
    """
    found = CLOSE_CODES.get(code)
    if found is not None:
        return found
    if 3000 <= code <= 4999:
        return Decision(_S, ErrorCode.ABORTED, f"the application closed the connection ({code})")
    return Decision(_R, ErrorCode.UNAVAILABLE, f"closed with code {code}")


def after_refusal(status: int) -> Decision:
    """The decision after the server answered the upgrade with HTTP ``status``: other 4xx
    stop (the same request would get the same answer), 5xx are retried."""
    found = HTTP_STATUSES.get(status)
    if found is not None:
        return found
    if 500 <= status <= 599:
        return Decision(_R, ErrorCode.UNAVAILABLE, f"the server failed the upgrade (HTTP {status})")
    return Decision(_S, ErrorCode.FAILED_PRECONDITION, f"the server refused the upgrade (HTTP {status})")
