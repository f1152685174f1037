"""Review 17: what a hostile HTTP client can do with the server's refusals (what /metrics
costs it is in tests/metrics/test_concurrent_scrapes.py)."""

from __future__ import annotations

import pytest
from tests.metrics.scraping import http_get
from tests.production.conftest import build_router

from wskit import Server

pytestmark = pytest.mark.timeout(60)


@pytest.mark.xfail(strict=True, reason="review17: a refused upgrade's decoded path can forge log lines")
async def test_a_refused_path_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """picows refuses an upgrade on a path other than WS_PATH and logs it (new with
    upgrades_refused{reason="path"}); the path is percent-decoded first (%0A is a newline),
    so with LOG_FORMAT=text a client writes lines of its choosing into the server's log."""
    caplog.set_level("INFO", logger="wskit.admission")
    server = Server(build_router(), port=0, env={}, transport="picows", path="/live")
    await server.start()
    try:
        answer = await http_get(server.port, "/x%0AERROR%20wskit.server:%20forged", upgrade=True)
    finally:
        await server.stop()
    assert answer.status == 404
    messages = [record.getMessage() for record in caplog.records if record.name == "wskit.admission"]
    assert messages and not any("\n" in message for message in messages), messages
