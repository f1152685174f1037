"""Spans of the tests in this folder, caught by the OpenTelemetry SDK's in-memory exporter.

wskit takes its tracer from OpenTelemetry's global tracer provider when a dispatcher is built
(``wskit.tracing.traced``), and OpenTelemetry lets a process set that provider only once. So
this folder installs one SDK provider, with an in-memory exporter, the first time one of its
tests asks for spans, and keeps it for the rest of the session; each test sees only the spans
finished while it ran. Tests elsewhere leave ``TRACING`` off and make no spans, so the
provider left behind changes nothing for them. When a provider of the SDK is already there
(set by someone else), the exporter is added to it instead of replacing it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture(scope="session")
def session_exporter() -> InMemorySpanExporter:
    """The exporter of the session's global SDK provider (installed on first use)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(session_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The exporter, empty at the start of the test (and left empty after it)."""
    session_exporter.clear()
    yield session_exporter
    session_exporter.clear()
