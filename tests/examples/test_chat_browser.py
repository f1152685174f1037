"""The chat demo in real headless Chromium (Debian's, driven by Playwright), against the demo's
own server in a process of its own, which is killed (SIGKILL) and started again on the same
port: both pages reconnect by themselves, what they said while the server was down arrives,
and both show the same messages, each once.

Chromium is ``/usr/bin/chromium`` (``make test`` installs Debian's ``chromium`` when it is
missing); Playwright's own browser builds are never downloaded. Without Chromium or
Playwright the test is skipped, and fails under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.production.conftest import reap, start_server_process
from tests.support.ci import require_module, unavailable

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
#: generous: a reconnect waits at most the page's backoff ceiling (5 s) plus the dial
WAIT_MS = 20_000

#: the page's messages as "name: text", in the order shown
TEXTS = (
    "[...document.querySelectorAll('#messages li.message')]"
    ".map(e => e.querySelector('.name').textContent + ': ' + e.querySelector('.text').textContent)"
)
STATE = "document.getElementById('status').dataset.state"

pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def chat_server(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m examples.chat`` (the demo as ``make run`` starts it) on ``port``."""
    env = {"HOST": "127.0.0.1", "PORT": str(port), "PYTHONPATH": str(ROOT)}
    proc = start_server_process(["-m", "examples.chat"], port, env=env)
    try:
        yield proc
    finally:
        reap(proc)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Headless Debian Chromium under Playwright."""
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does)")
    api = require_module("playwright.async_api", reason="the browser tests drive Chromium with it (the test extra)")
    async with api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Any, port: int, nick: str) -> Any:
    """A page of its own (own storage) joined to #lobby as ``nick``."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{port}/")
    await page.wait_for_function(f"{STATE} === 'open'", timeout=WAIT_MS)
    await page.fill("#nickname", nick)
    await page.fill("#room", "lobby")
    await page.click("#join")
    await page.wait_for_function("!document.getElementById('text').disabled", timeout=WAIT_MS)
    return page


async def say(page: Any, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#send")


async def wait_for_texts(page: Any, expected: list[str]) -> None:
    """Wait until the page shows exactly ``expected``; fail with what it shows."""
    try:
        wanted = json.dumps(json.dumps(expected, separators=(",", ":")))  # a JS string literal of JS's own JSON
        await page.wait_for_function(f"JSON.stringify({TEXTS}) === {wanted}", timeout=WAIT_MS)
    except Exception:
        shown = await page.evaluate("document.body.innerText")
        raise AssertionError(f"the page never showed {expected}; it shows:\n{shown}") from None


async def test_two_pages_chat_across_a_server_crash() -> None:
    """Two pages chat; the server is SIGKILLed and restarted on the same port; both pages show
    the state, reconnect by themselves and deliver what they said while it was down; both end
    with the same full list of messages, none lost, none twice."""
    port = free_port()
    async with chromium() as browser:
        with chat_server(port) as server:
            ada = await open_page(browser, port, "ada")
            bob = await open_page(browser, port, "bob")
            await say(ada, "one")
            await say(bob, "two")
            await say(ada, "three")
            before = ["ada: one", "bob: two", "ada: three"]
            await wait_for_texts(ada, before)
            await wait_for_texts(bob, before)

            server.kill()  # SIGKILL: no close frame, no SERVER_SHUTDOWN
            server.wait()
            for page in (ada, bob):
                await page.wait_for_function(f"{STATE} === 'reconnecting'", timeout=WAIT_MS)
            # said while the server is down: queued by the client
            await say(ada, "while down from ada")
            await say(bob, "while down from bob")
            await ada.wait_for_function("window.wskitClient.queued === 1", timeout=WAIT_MS)
            await bob.wait_for_function("window.wskitClient.queued === 1", timeout=WAIT_MS)
            status = await ada.text_content("#status")
            assert "Reconnecting" in (status or ""), status

        with chat_server(port):
            for page in (ada, bob):
                await page.wait_for_function(f"{STATE} === 'open'", timeout=WAIT_MS)
                await page.wait_for_function("window.wskitClient.queued === 0", timeout=WAIT_MS)
            await say(bob, "after")
            # the offline sends may land in either order; the rest is fixed
            ada_texts = await _settled(ada)
            bob_texts = await _settled(bob)
            assert ada_texts == bob_texts
            assert ada_texts[:3] == before
            assert sorted(ada_texts[3:5]) == ["ada: while down from ada", "bob: while down from bob"]
            assert ada_texts[5:] == ["bob: after"]
            errors = await ada.eval_on_selector_all("#errors li", "els => els.map(e => e.textContent)")
            assert errors == [], errors


async def _settled(page: Any) -> list[str]:
    """The page's messages once it shows the six expected (so a missing one fails here)."""
    await page.wait_for_function(f"{TEXTS}.length >= 6 && {TEXTS}.at(-1) === 'bob: after'", timeout=WAIT_MS)
    texts: list[str] = await page.evaluate(TEXTS)
    return texts
