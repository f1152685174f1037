"""OpenTelemetry spans per handled message and RPC (``TRACING=1``, extra ``wskit[otel]``).

Placeholder of the interface the dispatcher calls; being written (issue 17).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from wskit.context import Context

__all__ = ["traced"]

Pipeline = Callable[[Context[Any, Any]], Coroutine[Any, Any, None]]


def traced(pipeline: Pipeline, type_name: str, *, rpc: bool) -> Pipeline:
    """``pipeline`` run inside a span named after ``type_name`` (parented to ``meta.traceparent``)."""
    raise NotImplementedError("TRACING is being written")
