"""Log output for ``serve()``: readable text, or one JSON object per line (``LOG_FORMAT=json``).

JSON lines carry the logger, level, message, time and any ``extra=`` fields, so a log
pipeline can filter on ``client_id`` or ``code`` without parsing prose. Nothing is
formatted for levels that are off: wskit logs with %-style arguments throughout.

What a peer does wrong is not the server's error, and a client can do it as often as it
likes: such lines go through a :class:`LogBudget` (a few per interval, then a count of what
was left out), so a flood of bad requests cannot become a flood of log.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["JsonFormatter", "LogBudget", "configure_logging"]

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
        more = self.admit()
        if more is None:
            return None
        return f" ({more} more not logged)" if more else ""

    def admit(self) -> int | None:
        """None: do not log this one. Else log it; the number is how many were left out
        since the last line that was written (for a ``suppressed`` field)."""
        now = time.monotonic()
        if now - self._window_start >= self.interval_s:
            self._window_start, self._in_window = now, 0
        if self._in_window >= self.burst:
            self.suppressed += 1
            return None
        self._in_window += 1
        more, self.suppressed = self.suppressed, 0
        return more
