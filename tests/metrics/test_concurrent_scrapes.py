"""What many ``/metrics`` requests at once cost: requests that arrive while a rendering is
under way share it (wskit.ops_http), so anyone who reaches the port cannot multiply the
scrape's cost at will. Over real sockets on both of serve()'s hosts, and at
``own_answer`` for a scrape whose client goes away."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from tests.metrics.scraping import build_router, http_get

from wskit import Server
from wskit.ops_http import own_answer
from wskit.prometheus import render as real_render
from wskit.runtime import Runtime

pytestmark = pytest.mark.timeout(60)

SCRAPES = 50


@pytest.mark.parametrize("transport", ["aiohttp", "picows"])
async def test_concurrent_scrapes_share_one_rendering(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """50 simultaneous GET /metrics from one client: rendering the whole exposition in the
    default thread pool (with 10,000 connections ~10 ms of GIL-holding work each, in the
    pool DNS lookups also wait in) happens at most a couple of times for the burst, not
    once per request; every request is answered 200."""
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


async def test_a_scrape_whose_client_left_does_not_cancel_the_others_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two scrapes share a rendering; the first is cancelled while it runs (its client went
    away, and the host cancels what answers it): the second still gets the exposition, from
    that one rendering."""
    started, gate = threading.Event(), threading.Event()
    renders = 0

    def stalled(*args: Any, **kwargs: Any) -> bytes:
        nonlocal renders
        renders += 1
        started.set()
        gate.wait(10)
        return real_render(*args, **kwargs)

    monkeypatch.setattr("wskit.ops_http.render", stalled)
    runtime = Runtime(build_router())
    first = asyncio.ensure_future(own_answer(runtime, "/metrics"))
    assert await asyncio.to_thread(started.wait, 5)
    second = asyncio.ensure_future(own_answer(runtime, "/metrics"))
    await asyncio.sleep(0)  # the second scrape's first step: it joins the rendering under way
    first.cancel()
    gate.set()
    answer = await second
    assert answer is not None and answer.status == 200
    assert b"wskit_connections_opened_total" in answer.body
    assert renders == 1
    assert first.cancelled()
