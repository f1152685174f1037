"""wskit.export sits beside the CLI: it reads declarations (router, schema, protocol) and
never imports the runtime, a host, a broker or a client, so exporting starts no server."""

from __future__ import annotations

import pytest
from tests.unit.test_layering import MODULES, imports_of

RUNTIME_AND_HOSTS = (
    "wskit.runtime",
    "wskit.lifecycle",
    "wskit.hub",
    "wskit.pubsub",
    "wskit.admission",
    "wskit.guards",
    "wskit.transports",
    "wskit.server",
    "wskit.asgi",
    "wskit.client",
    "wskit.cli",
    "wskit.testing",
)

EXPORT = sorted(name for name in MODULES if name == "wskit.export" or name.startswith("wskit.export."))


def test_export_modules_are_found() -> None:
    """The walk sees the exporter (guards against checking nothing)."""
    assert {"wskit.export", "wskit.export.asyncapi", "wskit.export.frames"} <= set(EXPORT)


@pytest.mark.parametrize("module", EXPORT)
def test_export_imports_no_runtime_or_host(module: str) -> None:
    """Only declarations, settings and the schema layer."""
    bad = sorted(
        name
        for name in imports_of(module)
        if name == "wskit" or any(name == f or name.startswith(f + ".") for f in RUNTIME_AND_HOSTS)
    )
    assert bad == []
