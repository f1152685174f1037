"""Log output for ``serve()``: readable text, or one JSON object per line (``LOG_FORMAT=json``).

JSON lines carry the logger, level, message, time and any ``extra=`` fields, so a log
pipeline can filter on ``client_id`` or ``code`` without parsing prose. Nothing is
formatted for levels that are off: wskit logs with %-style arguments throughout.

What a peer does wrong is not the server's error: :class:`PeerErrorLog` turns the
tracebacks aiohttp logs for malformed requests and vanished peers into one short line each,
rate-limited, so a flood of bad requests cannot become a flood of log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["JsonFormatter", "LogBudget", "PeerErrorLog", "configure_logging"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Give the root logger one stderr handler (unless the application configured its own)."""
    logging.getLogger("wskit").setLevel(level)
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


#: exceptions a peer causes (the request or the connection was the peer's doing)
_PEER_ERRORS: tuple[type[BaseException], ...] = (HttpProcessingError, ConnectionError, TimeoutError)


class LogBudget:
    """At most ``burst`` lines per ``interval_s`` seconds for one kind of event a peer causes.

    :meth:`take` says whether to write a line now; the line that is written next says how many
    were left out (:meth:`take` returns that count in its text). Used for everything a client
    can make happen as often as it likes: refused upgrades, malformed requests.
    """

    __slots__ = ("_in_window", "_window_start", "burst", "interval_s", "suppressed")

    def __init__(self, *, burst: int = 10, interval_s: float = 10.0) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self._window_start = 0.0
        self._in_window = 0
        #: events not logged since the last line that was
        self.suppressed = 0

    def take(self) -> str | None:
        """None: do not log this one. Else log it, with the returned suffix appended
        (``" (N more not logged)"`` after a quiet spell, else empty)."""
        now = time.monotonic()
        if now - self._window_start >= self.interval_s:
            self._window_start, self._in_window = now, 0
        if self._in_window >= self.burst:
            self.suppressed += 1
            return None
        self._in_window += 1
        more, self.suppressed = self.suppressed, 0
        return f" ({more} more not logged)" if more else ""


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
