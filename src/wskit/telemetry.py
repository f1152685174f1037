"""What operators watch: counters a scrape reads, and the structured events the log gets.

One :class:`Telemetry` per runtime. The hot path only adds to integers and to the bucket
counts of a :class:`Histogram` (no lock, no label lookup, no allocation); the exposition
(:mod:`wskit.prometheus`) reads :meth:`Telemetry.families` when scraped, so a scrape costs
the same with ten connections as with ten thousand.

Every label a client can influence is bounded: message types are the declared ones plus
``"other"`` (unknown types and junk frames), error codes are the 13 wire codes, refusals
and close codes come from fixed lists. A client cannot grow the number of series.

Events (connect, disconnect, refused upgrade, handler error, drops, rate limiting, shutdown
phases; the Redis link writes its state changes itself) go to the ``wskit.events`` logger with their facts as ``extra=``
fields, so ``LOG_FORMAT=json`` writes them as JSON fields; the ones a client can cause at
will pass a :class:`~wskit.logs.LogBudget`, and the line after a quiet spell says how many
were left out. A failing log handler costs the event, never the connection.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wskit.errors import ErrorCode
from wskit.logs import LogBudget

__all__ = [
    "CLOSE_CODES",
    "OTHER",
    "REFUSAL_REASONS",
    "Family",
    "Histogram",
    "RouteStats",
    "Telemetry",
]

#: connect and disconnect; the other events keep the logger of the part that decides them
events = logging.getLogger("wskit.events")
_admission = logging.getLogger("wskit.admission")
_dispatch = logging.getLogger("wskit.dispatch")
_connection = logging.getLogger("wskit.connection")
_ratelimit = logging.getLogger("wskit.guards.ratelimit")
_server = logging.getLogger("wskit.server")

#: the label value for everything outside a bounded set
OTHER = "other"

#: why an upgrade was refused (``wskit_upgrades_refused_total{reason}``)
REFUSAL_REASONS = (
    "draining",
    "origin",
    "max_connections",
    "per_ip",
    "auth",
    "banned",
    "path",
    "bad_request",
    OTHER,
)

#: close codes counted by name of their number; anything else is "other"
CLOSE_CODES = ("1000", "1001", "1002", "1003", "1006", "1007", "1008", "1009", "1011", "1012", "1013", "4000")

#: frames the framework itself sends (counted under their own type)
FRAMEWORK_OUTBOUND = (
    "ERROR",
    "RPC_ERROR",
    "$ws:rpc-progress",
    "__heartbeat_ack",
    "SERVER_SHUTDOWN",
    "$ws:subscribed",
    "$ws:unsubscribed",
)

#: distinct outbound type labels kept before the rest count as "other"
MAX_SENT_TYPES = 500

#: seconds: a handler's time, from the message's arrival at the pipeline to its end
HANDLER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: seconds: one broker publish (a Redis round trip)
PUBLISH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
#: seconds: one garbage-collector pass
GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Histogram:
    """Cumulative-bucket histogram without locks (one event loop writes it)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        #: per bucket (not cumulative), the last one is +Inf
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """Observations so far (the sum of the buckets: one addition less per observation)."""
        return sum(self.counts)

    def snapshot(self) -> dict[str, Any]:
        """Plain data (JSON-able, summable across processes): bounds, per-bucket counts, sum, count."""
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.sum, "count": sum(self.counts)}


class RouteStats:
    """One declared message type's counters, held by the dispatcher's compiled route."""

    __slots__ = ("duration", "received")

    def __init__(self) -> None:
        self.received = 0
        self.duration = Histogram(HANDLER_BUCKETS)


@dataclass(slots=True)
class Family:
    """One metric with its samples, in plain data: what an exposition renders and what
    workers sum. ``samples`` maps label values (in ``labels`` order) to a number, or for a
    histogram to :meth:`Histogram.snapshot`'s dict."""

    name: str
    kind: str  # "counter" | "gauge" | "histogram"
    help: str
    labels: tuple[str, ...] = ()
    samples: dict[tuple[str, ...], Any] = field(default_factory=dict)


class Telemetry:
    """The counters of one runtime and the structured events it writes.

    ``types``: the message types clients may send (routes and the framework's own);
    ``outbound``: the types the server may send. Both bound the ``type`` label.
    ``gauges``: name -> (help, reader) for values read at scrape time (open connections,
    broker link state); the runtime adds them.
    """

    def __init__(self, types: Iterable[str] = (), outbound: Iterable[str] = ()) -> None:
        self.routes: dict[str, RouteStats] = {name: RouteStats() for name in types}
        #: frames that named no declared type, or none at all
        self.received_other = 0
        self.sent: dict[str, int] = dict.fromkeys((*outbound, *FRAMEWORK_OUTBOUND, OTHER), 0)
        #: whether counting is on (METRICS); events are written either way. The dispatcher's
        #: hot path checks once per message; rarer paths (hub, guards) check this
        self.counting = True
        #: the 13 wire codes, and "other" for the application's own (``ctx.error("ROOM_FULL")``)
        self.errors: dict[str, int] = dict.fromkeys((*(code.value for code in ErrorCode), OTHER), 0)
        self.refused: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        self.closes: dict[str, int] = dict.fromkeys((*CLOSE_CODES, OTHER), 0)
        self.opened = 0
        self.publishes = 0
        self.dropped: dict[str, int] = {"drop-oldest": 0, "drop-new": 0, "close": 0}
        self.rate_limited = 0
        self.recoveries: dict[str, int] = {"recovered": 0, "failed": 0}
        self.broker_reconnects: Callable[[], int] = _zero
        #: frames delivered from topics, by type (read when scraped; the hub counts them)
        self.deliveries: Callable[[], Mapping[str, int]] = _nothing
        self.publish_seconds = Histogram(PUBLISH_BUCKETS)
        self.gc_seconds = Histogram(GC_BUCKETS)
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self._connect_budget = LogBudget(burst=100, interval_s=1.0)
        self._disconnect_budget = LogBudget(burst=100, interval_s=1.0)
        self._refusal_budget = LogBudget()
        self._drop_budget = LogBudget()
        self._limit_budget = LogBudget()
        self._error_budget = LogBudget(burst=20, interval_s=10.0)

    # -- counting (hot path callers add to the fields directly) -----------------------------

    def sent_type(self, type_name: str, count: int = 1) -> None:
        """``count`` frames of ``type_name`` went out (unknown types count as "other")."""
        sent = self.sent
        if type_name in sent:
            sent[type_name] += count
        elif len(sent) < MAX_SENT_TYPES:
            # the server sends only types its code names: bounded by the application, not
            # by clients (the cap guards against code that makes types up at run time)
            sent[type_name] = count
        else:
            sent[OTHER] += count

    def error(self, code: str) -> None:
        """An error answer with wire code ``code`` went out (an application's own code: "other")."""
        errors = self.errors
        if code in errors:
            errors[code] += 1
        else:
            errors[OTHER] += 1

    def error_sent(self, code: str, rpc: bool) -> None:
        """An ``ERROR`` (``RPC_ERROR`` when ``rpc``) frame with ``code`` was queued."""
        self.error(code)
        self.sent["RPC_ERROR" if rpc else "ERROR"] += 1

    # -- events ----------------------------------------------------------------------------

    def connected(self, client_id: str, user_id: Any, ip: str | None) -> None:
        if self.counting:
            self.opened += 1
        self._event(
            events,
            logging.INFO,
            self._connect_budget,
            "client %s connected from %s",
            (client_id, ip),
            event="connect",
            client_id=client_id,
            user_id=_user(user_id),
            ip=ip,
        )

    def disconnected(
        self,
        client_id: str,
        user_id: Any,
        code: int | None,
        reason: str,
        duration_s: float,
        messages_in: int,
        messages_out: int,
    ) -> None:
        if self.counting:
            label = str(code) if code is not None else "1006"
            closes = self.closes
            closes[label if label in closes else OTHER] += 1
        self._event(
            events,
            logging.INFO,
            self._disconnect_budget,
            "client %s disconnected (%s %s) after %.1f s, %d in / %d out",
            (client_id, code, reason, duration_s, messages_in, messages_out),
            event="disconnect",
            client_id=client_id,
            user_id=_user(user_id),
            code=code,
            reason=reason,
            duration_s=round(duration_s, 3),
            messages_in=messages_in,
            messages_out=messages_out,
        )

    def refused_upgrade(self, reason: str, status: int, ip: str | None, path: str, why: str) -> None:
        """Count a refused upgrade under ``reason`` and log it (within the refusal budget).

        ``path`` is the client's, percent-decoded by the host (``%0A`` is a newline): it is
        logged clipped and ``repr()``-escaped, in the text and the field alike, so a refused
        request cannot write a line of its own into a text log or a long one into any log."""
        if self.counting:
            refused = self.refused
            refused[reason if reason in refused else OTHER] += 1
        shown = repr(path[:200]) + ("..." if len(path) > 200 else "")
        self._event(
            _admission,
            logging.INFO,
            self._refusal_budget,
            "upgrade refused (%d) for %s %s: %s",
            (status, ip, shown, why),
            event="upgrade_refused",
            reason=reason,
            status=status,
            ip=ip,
            path=shown,
        )

    def handler_error(self, type_name: str, client_id: str, code: str, exc: BaseException | None) -> None:
        """A handler raised something that is not a WsKitError (answered ``INTERNAL``)."""
        self._event(
            _dispatch,
            logging.ERROR,
            self._error_budget,
            "handler for %s (client %s) raised",
            (type_name, client_id),
            exc=exc,
            event="handler_error",
            type=type_name,
            client_id=client_id,
            code=code,
        )

    def drop(self, client_id: str, policy: str, count: int) -> None:
        """``count`` frames to ``client_id`` were not sent (``policy``: drop-oldest, drop-new,
        or close: the slow consumer was closed)."""
        if self.counting:
            self.dropped[policy] = self.dropped.get(policy, 0) + count
        self._event(
            _connection,
            logging.WARNING,
            self._drop_budget,
            "client %s: outbound queue full, %d frame(s) dropped (%s)",
            (client_id, count, policy),
            event="drop",
            client_id=client_id,
            policy=policy,
            count=count,
        )

    def limited(self, client_id: str, user_id: Any, type_name: str) -> None:
        if self.counting:
            self.rate_limited += 1
        self._event(
            _ratelimit,
            logging.INFO,
            self._limit_budget,
            "client %s rate-limited on %s",
            (client_id, type_name),
            event="rate_limited",
            client_id=client_id,
            user_id=_user(user_id),
            type=type_name,
        )

    def shutdown_phase(self, phase: str, **facts: Any) -> None:
        """A step of a graceful shutdown: ``draining``, ``closing``, ``stopped``."""
        shown = " ".join(f"{k}={v}" for k, v in facts.items())
        self._event(
            _server, logging.INFO, None, "shutdown: %s %s", (phase, shown), event="shutdown", phase=phase, **facts
        )

    @staticmethod
    def _event(
        logger: logging.Logger,
        level: int,
        budget: LogBudget | None,
        msg: str,
        args: tuple[Any, ...],
        *,
        exc: BaseException | None = None,
        **fields: Any,
    ) -> None:
        if not logger.isEnabledFor(level):
            return
        if budget is not None:
            left_out = budget.admit()
            if left_out is None:
                return
            if left_out:
                fields["suppressed"] = left_out
                msg += " (%d more not logged)"
                args = (*args, left_out)
        try:
            logger.log(level, msg, *args, exc_info=exc, extra=fields)
        except Exception:  # noqa: BLE001 - a broken log handler costs the line, not the caller
            return

    # -- reading ---------------------------------------------------------------------------

    def _sent_with_deliveries(self) -> dict[tuple[str, ...], Any]:
        totals = dict(self.sent)
        for type_name, count in self.deliveries().items():
            key = type_name if type_name in totals or len(totals) < MAX_SENT_TYPES else OTHER
            totals[key] = totals.get(key, 0) + count
        return {(k,): v for k, v in totals.items()}

    def families(self) -> list[Family]:
        """Every metric as plain data (read at scrape time; see :mod:`wskit.prometheus`)."""
        received: dict[tuple[str, ...], Any] = {(name,): stats.received for name, stats in self.routes.items()}
        received[(OTHER,)] = self.received_other
        durations: dict[tuple[str, ...], Any] = {
            (name,): stats.duration.snapshot() for name, stats in self.routes.items() if stats.duration.count
        }
        out = [
            Family(
                "wskit_connections_opened_total",
                "counter",
                "Connections opened (upgrades accepted).",
                (),
                {(): self.opened},
            ),
            Family(
                "wskit_messages_received_total",
                "counter",
                "Messages received, by declared type (anything else: other).",
                ("type",),
                received,
            ),
            Family(
                "wskit_messages_sent_total",
                "counter",
                "Messages sent to one connection (replies, sends, errors) or delivered from a topic, by type.",
                ("type",),
                self._sent_with_deliveries(),
            ),
            Family(
                "wskit_errors_total", "counter", "Error answers sent, by wire code.", ("code",), _keyed(self.errors)
            ),
            Family(
                "wskit_handler_duration_seconds",
                "histogram",
                "Time from a message entering the pipeline to its handler's end, by type.",
                ("type",),
                durations,
            ),
            Family(
                "wskit_upgrades_refused_total",
                "counter",
                "WebSocket upgrades refused, by reason.",
                ("reason",),
                _keyed(self.refused),
            ),
            Family(
                "wskit_disconnects_total",
                "counter",
                "Connections ended, by close code.",
                ("code",),
                _keyed(self.closes),
            ),
            Family("wskit_publishes_total", "counter", "Publishes made by this process.", (), {(): self.publishes}),
            Family(
                "wskit_dropped_total",
                "counter",
                "Outbound frames not sent because a connection's queue was full, by backpressure policy "
                "(close: slow consumers closed).",
                ("policy",),
                _keyed(self.dropped),
            ),
            Family(
                "wskit_rate_limited_total",
                "counter",
                "Messages refused by the rate limit.",
                (),
                {(): self.rate_limited},
            ),
            Family(
                "wskit_recoveries_total",
                "counter",
                "History recoveries on (re)subscribe, by outcome.",
                ("outcome",),
                _keyed(self.recoveries),
            ),
            Family(
                "wskit_broker_reconnects_total",
                "counter",
                "Times the broker link came back after being lost.",
                (),
                {(): self.broker_reconnects()},
            ),
            Family(
                "wskit_broker_publish_seconds",
                "histogram",
                "Time one publish took at the broker (a Redis round trip).",
                (),
                {(): self.publish_seconds.snapshot()} if self.publish_seconds.count else {},
            ),
            Family(
                "wskit_gc_pause_seconds",
                "histogram",
                "Garbage-collector passes, where serve() runs its GC policy.",
                (),
                {(): self.gc_seconds.snapshot()} if self.gc_seconds.count else {},
            ),
        ]
        for name, (help_text, read) in self.gauges.items():
            out.append(Family(name, "gauge", help_text, (), {(): read()}))
        return out


def _keyed(counts: Mapping[str, int]) -> dict[tuple[str, ...], int]:
    return {(k,): v for k, v in counts.items()}


def _nothing() -> Mapping[str, int]:
    return {}


def _zero() -> int:
    return 0


def _user(user_id: Any) -> str | None:
    return None if user_id is None else str(user_id)
