"""The Prometheus text exposition of a runtime's counters (``GET /metrics``).

:class:`~wskit.telemetry.Telemetry` keeps plain numbers and hands them over as
:class:`~wskit.telemetry.Family` values; this module only turns those into the text format,
through prometheus-client (the ``wskit[metrics]`` extra), imported when a scrape first needs
it. Each scrape builds a private ``CollectorRegistry`` around one collector that yields the
families it was given: nothing is registered in prometheus-client's global registry, so two
servers in one process (or an application that uses prometheus-client itself) never see
each other's series, and nothing stays behind between scrapes.

Names are exposed exactly as :mod:`wskit.telemetry` spells them. prometheus-client strips a
counter's ``_total`` and writes it back on every line, so counters must be named with it
(a test holds every family to its exposed name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from wskit.telemetry import Family

__all__ = ["INSTALL_HINT", "available", "content_type", "render"]

log = logging.getLogger("wskit.metrics")

#: what /metrics answers (501) and the start-up log line says when prometheus-client is missing
INSTALL_HINT = "Prometheus metrics need prometheus-client: pip install 'wskit[metrics]'"


def available() -> bool:
    """True when prometheus-client can be imported (``wskit[metrics]``)."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def content_type() -> str:
    """The content type prometheus-client writes (``CONTENT_TYPE_LATEST`` of its version)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return str(CONTENT_TYPE_LATEST)


def render(families: Iterable[Family], *, process: bool = False) -> bytes:
    """``families`` in the Prometheus text format; with ``process``, also the answering
    process's ``process_*`` metrics (CPU, memory, open files), which only mean something
    when one process answers for itself.

    Raises ``ImportError`` without prometheus-client (check :func:`available` first).
    """
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(list(families)))
    if process:
        ProcessCollector(registry=registry)
    return bytes(generate_latest(registry))


class _Collector:
    """A prometheus-client collector of families read once, before the scrape renders them."""

    def __init__(self, families: list[Family]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for family in self.families:
            labels = list(family.labels)
            metric: Any
            if family.kind == "counter":
                metric = CounterMetricFamily(family.name, family.help, labels=labels)
                for values, number in family.samples.items():
                    metric.add_metric(list(values), number)
            elif family.kind == "gauge":
                metric = GaugeMetricFamily(family.name, family.help, labels=labels)
                for values, number in family.samples.items():
                    metric.add_metric(list(values), number)
            elif family.kind == "histogram":
                metric = HistogramMetricFamily(family.name, family.help, labels=labels)
                for values, snapshot in family.samples.items():
                    metric.add_metric(list(values), _cumulative(snapshot), snapshot["sum"])
            else:
                log.warning("metric %s has an unknown kind %r: not exposed", family.name, family.kind)
                continue
            yield metric


def _cumulative(snapshot: dict[str, Any]) -> list[tuple[str, float]]:
    """A :meth:`~wskit.telemetry.Histogram.snapshot` (a count per bucket) as the cumulative
    ``(le, count)`` pairs of the text format, ``+Inf`` last."""
    bounds: list[float] = snapshot["bounds"]
    counts: list[int] = snapshot["counts"]
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        running += count
        out.append((_go_float(bound), running))
    return out


def _go_float(bound: float) -> str:
    """A bucket bound as Prometheus writes ``le`` (``+Inf``; ``1.0``, not ``1``)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))
