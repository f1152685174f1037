"""Review 17: what a hostile HTTP client can do with the server's refusals (what /metrics
costs it is in tests/metrics/test_concurrent_scrapes.py)."""

from __future__ import annotations

import pytest
from tests.metrics.scraping import http_get
from tests.production.conftest import build_router

from wskit import Server

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_a_refused_path_cannot_forge_a_log_line(transport: str, caplog: pytest.LogCaptureFixture) -> None:
    """An upgrade on a path other than WS_PATH is refused (404), counted under "path" and
    logged; the path is percent-decoded first (%0A is a newline), so it is logged escaped
    and clipped, in the text and the field alike: with LOG_FORMAT=text a client cannot
    write a line of its choosing into the server's log."""
    caplog.set_level("INFO", logger="wskit.admission")
    server = Server(build_router(), port=0, env={}, transport=transport, path="/live")
    await server.start()
    try:
        forged = await http_get(server.port, "/x%0AERROR%20wskit.server:%20forged", upgrade=True)
        long = await http_get(server.port, "/" + "%0D" * 500, upgrade=True)
        assert server.runtime is not None
        assert server.runtime.telemetry.refused["path"] == 2
    finally:
        await server.stop()
    assert (forged.status, long.status) == (404, 404)
    records = [record for record in caplog.records if record.name == "wskit.admission"]
    assert len(records) == 2, [record.getMessage() for record in records]
    paths = [record.__dict__["path"] for record in records]  # the field LOG_FORMAT=json writes
    for record, path in zip(records, paths, strict=True):
        message = record.getMessage()
        assert not any(char in message for char in "\n\r"), message
        assert path in message and len(path) <= len(repr("\r" * 200)) + len("...")
    assert paths[0] == repr("/x\nERROR wskit.server: forged")
    assert paths[1] == repr("/" + "\r" * 199) + "..."
