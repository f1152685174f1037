"""aiohttp's server log, minus what peers cause: one short, rate-limited line each.

aiohttp logs a malformed request (bad request line, header too long, broken chunked body...)
and a peer that vanished mid-request as an ERROR with a traceback, about nine lines each:
5,000 bad requests made 45,000 lines. The aiohttp host hands aiohttp a :class:`PeerErrorLog`
instead of its own logger.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from wskit.logs import LogBudget

__all__ = ["PeerErrorLog"]

#: exceptions a peer causes (the request or the connection was the peer's doing)
_PEER_ERRORS: tuple[type[BaseException], ...] = (HttpProcessingError, ConnectionError, TimeoutError)


class PeerErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger (``RequestHandler(logger=...)``), minus what peers cause.

    aiohttp logs a malformed request (bad request line, header too long, broken chunked
    body...) and a peer that vanished mid-request as an ERROR with a traceback, about nine
    lines each: 5,000 bad requests made 45,000 lines. Here an error caused by the peer
    (:data:`_PEER_ERRORS`) becomes one line without traceback and without anything the peer
    sent (a request line may carry a token): INFO for a refused bad request, DEBUG for a
    peer that went away. At most ``burst`` such lines per ``interval_s`` seconds; the next
    line that is written says how many were left out. Everything else (a bug in a handler)
    passes through unchanged, traceback included.
    """

    def __init__(self, logger: logging.Logger, *, burst: int = 10, interval_s: float = 10.0) -> None:
        super().__init__(logger, {})
        self.budget = LogBudget(burst=burst, interval_s=interval_s)
        #: peer errors seen in all (logged or not)
        self.peer_errors = 0

    @property
    def suppressed(self) -> int:
        """Peer errors not logged since the last line that was."""
        return self.budget.suppressed

    def log(self, level: int, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        exc = _exception_of(exc_info)
        if exc is None or not isinstance(exc, _PEER_ERRORS):
            self.logger.log(level, msg, *args, exc_info=exc_info, **kwargs)
            return
        self.peer_errors += 1
        bad_request = isinstance(exc, HttpProcessingError)
        line_level = min(level, logging.INFO if bad_request else logging.DEBUG)
        if not self.logger.isEnabledFor(line_level):
            return
        tail = self.budget.take()
        if tail is None:
            return
        what = f"{exc.code} {type(exc).__name__}" if isinstance(exc, HttpProcessingError) else type(exc).__name__
        # aiohttp's messages name the peer ("Error handling request from %s") and nothing it sent
        peer = args[0] if args and "from %s" in str(msg) else "?"
        if bad_request:
            self.logger.log(line_level, "refused a bad HTTP request from %s (%s)%s", peer, what, tail)
        else:
            self.logger.log(line_level, "peer %s went away (%s)%s", peer, what, tail)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return msg, kwargs


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    if exc_info is True:
        return sys.exc_info()[1]
    return None
