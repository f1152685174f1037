"""How long to wait before the next connection attempt: exponential backoff, full jitter.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the clients of a
restarted server over the whole window instead of bunching them at the same instants, which
is what stops a reconnect storm (see AWS's "Exponential Backoff And Jitter" analysis).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from wskit.errors import ConfigError

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect timing.

    Attempt ``n`` (0 for the first retry) waits a uniform random time in
    ``[0, min(max_delay, initial_delay * multiplier**n)]``; a server's hint (``retryAfterMs``
    of ``SERVER_SHUTDOWN``, ``Retry-After`` of a 429/503) is a floor under it.
    ``max_attempts``: failed attempts in a row before the client stops (None: never stops).
    ``reset_after``: how long a connection must have stayed open for the count of failed
    attempts to start over; one lost sooner (a server that accepts, then closes 1013 at
    once) counts as a failed attempt, so the waits keep growing and ``max_attempts`` applies.

    Defaults: 0.5 s, doubling, capped at 30 s, forever; reset after 5 s open.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    max_attempts: int | None = None
    reset_after: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ConfigError(
                f"Backoff: need 0 <= initial_delay <= max_delay, got {self.initial_delay} and {self.max_delay}"
            )
        if self.multiplier < 1:
            raise ConfigError(f"Backoff: multiplier must be >= 1, got {self.multiplier}")
        if self.reset_after < 0:
            raise ConfigError(f"Backoff: reset_after must be >= 0, got {self.reset_after}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(f"Backoff: max_attempts must be >= 1 or None, got {self.max_attempts}")

    def ceiling(self, attempt: int) -> float:
        """The most attempt ``attempt`` may wait (before jitter)."""
        # exponent capped so a client that has retried for days does not overflow a float
        return min(self.max_delay, self.initial_delay * self.multiplier ** min(attempt, 64))

    def delay(self, attempt: int, *, floor: float = 0.0) -> float:
        """Seconds to wait before attempt ``attempt``: full jitter, never less than ``floor``."""
        return max(floor, self.rng.uniform(0.0, self.ceiling(attempt)))

    def exhausted(self, failures: int) -> bool:
        """Whether ``failures`` attempts in a row are all the client may make."""
        return self.max_attempts is not None and failures >= self.max_attempts
