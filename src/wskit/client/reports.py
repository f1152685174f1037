"""Reporting what the server got wrong, without letting a hostile server flood the log.

Each problem goes to the application's ``on_error`` callback (every one: it may count them)
and to the log, at most ``burst`` lines per ``window`` seconds; the lines held back are
counted and the count is logged with the next line that gets through.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from wskit.client.errors import BadFrame

__all__ = ["HEAD_CHARS", "Reporter", "head_of"]

log = logging.getLogger("wskit.client")

#: characters of a bad frame quoted in a report
HEAD_CHARS = 80


def head_of(data: bytes | str) -> str:
    """The start of a frame, as text, for a report."""
    part = data[: HEAD_CHARS * 4]
    text = part.decode("utf-8", "replace") if isinstance(part, bytes) else part
    return text[:HEAD_CHARS]


class Reporter:
    """Sends :class:`BadFrame` and server ``ERROR`` reports to ``on_error`` and a bounded log."""

    def __init__(
        self,
        on_error: Callable[[Exception], object] | None,
        *,
        burst: int = 10,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_error = on_error
        self._burst = burst
        self._window = window
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self._held_back = 0
        #: problems seen, by kind (``not-json``, ``unknown-type``... and ``server-error``)
        self.counts: Counter[str] = Counter()

    def bad_frame(self, kind: str, detail: str, data: bytes | str = b"") -> None:
        """Report a frame the client skipped."""
        error = BadFrame(kind, detail, head_of(data) if data else "")
        self.counts[kind] += 1
        self._log("wskit client skipped a frame from the server: %s", error)
        self._deliver(error)

    def error(self, error: Exception, kind: str = "server-error") -> None:
        """Report an error the server sent that no request waits for (``ERROR`` to an event)."""
        self.counts[kind] += 1
        self._log("wskit client: the server reported an error: %s", error)
        self._deliver(error)

    def local(self, kind: str, text: str, error: Exception) -> None:
        """Report a problem on this side (an application callback that raised)."""
        self.counts[kind] += 1
        self._log("wskit client: " + text + ": %r", error)
        self._deliver(error)

    def _spend(self) -> bool:
        """Whether one more log line fits in this window's burst (else it is held back)."""
        now = self._clock()
        if now - self._window_start >= self._window:
            self._window_start = now
            self._logged = 0
        if self._logged >= self._burst:
            self._held_back += 1
            return False
        self._logged += 1
        return True

    def _log(self, text: str, error: Exception) -> None:
        if not self._spend():
            return
        if self._held_back:
            log.warning(text + " (%d similar reports held back)", error, self._held_back)
            self._held_back = 0
        else:
            log.warning(text, error)

    def _deliver(self, error: Exception) -> None:
        if self._on_error is None:
            return
        try:
            self._on_error(error)
        except Exception:  # the application's callback must not break reading
            if self._spend():  # under the same budget: a callback that always raises
                log.exception("on_error callback raised")
