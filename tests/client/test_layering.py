"""wskit.client sits beside the server, not on it: it imports only the declarations it shares
with the server (errors, protocol, schema) and itself, never the runtime or a host."""

from __future__ import annotations

import pytest
from tests.unit.test_layering import MODULES, imports_of

CLIENT = sorted(m for m in MODULES if m == "wskit.client" or m.startswith("wskit.client."))
ALLOWED = ("wskit.errors", "wskit.protocol", "wskit.schema", "wskit.client")


def test_the_client_modules_are_found() -> None:
    """The walk sees the client package (guards against checking nothing)."""
    assert {"wskit.client", "wskit.client.client", "wskit.client.connection"} <= set(CLIENT)


@pytest.mark.parametrize("module", CLIENT)
def test_client_imports_only_shared_declarations(module: str) -> None:
    """A client module imports no runtime, hub, broker, host, server or testing module."""
    bad = sorted(m for m in imports_of(module) if not any(m == a or m.startswith(a + ".") for a in ALLOWED))
    assert bad == []
