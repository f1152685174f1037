"""Review 17: what a hostile HTTP client can make /metrics cost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.metrics.scraping import http_get
from tests.production.conftest import build_router

from wskit import Server
from wskit.prometheus import render as real_render

pytestmark = pytest.mark.timeout(60)

SCRAPES = 50


@pytest.mark.xfail(strict=True, reason="review17: every concurrent /metrics request renders on its own")
@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_concurrent_scrapes_share_one_rendering(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """50 simultaneous GET /metrics from one client: each renders the whole exposition in
    the default thread pool (with 10,000 connections ~10 ms of GIL-holding work each, in
    the pool DNS lookups also wait in), so anyone who reaches the port multiplies the
    scrape cost at will. Requests that arrive while a rendering is under way should share
    it (or a short cache): at most a couple of renderings for the burst."""
    renders = 0

    def counting(*args: Any, **kwargs: Any) -> bytes:
        nonlocal renders
        renders += 1
        return real_render(*args, **kwargs)

    monkeypatch.setattr("wskit.ops_http.render", counting)
    server = Server(build_router(), port=0, env={}, transport=transport)
    await server.start()
    try:
        answers = await asyncio.gather(*(http_get(server.port, "/metrics") for _ in range(SCRAPES)))
    finally:
        await server.stop()
    assert {answer.status for answer in answers} == {200}
    assert renders <= 2, f"{renders} renderings for {SCRAPES} concurrent scrapes"


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
