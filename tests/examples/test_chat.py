"""The chat demo (examples/chat): in memory, over real sockets, and driven in a real browser.

Three tiers: the router through :class:`wskit.testing.TestClient`; the real server with its
page fetched over HTTP and two ``websockets`` clients; and headless Chromium running the
page through the Chrome DevTools Protocol (skipped without a browser, unless ``CI=true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from examples.chat.__main__ import STATIC_FILES
from examples.chat.app import (
    ROOM_FULL,
    ChatLimits,
    History,
    Join,
    Leave,
    Say,
    Who,
    create_router,
)
from tests.support.ci import unavailable
from websockets.asyncio.client import ClientConnection, connect

from wskit import Router, Server
from wskit.testing import TestClient
from wskit.testing.client import Message, RpcError

#: Small bounds, so every limit is reachable in a few messages.
LIMITS = ChatLimits(max_members=2, history_len=3, max_rooms=2)


class Chat:
    """A fresh chat router and the in-memory clients connected to it (closed at teardown)."""

    def __init__(self, router: Router[Any]) -> None:
        self.router = router
        self.stack = contextlib.AsyncExitStack()

    async def connect(self) -> TestClient:
        client = await self.stack.enter_async_context(TestClient(self.router))
        welcome = await client.receive()
        assert welcome.type == "WELCOME"
        assert welcome.payload["client_id"] == client.client_id
        return client


@pytest.fixture
async def chat() -> AsyncIterator[Chat]:
    room = Chat(create_router(LIMITS))
    async with room.stack:
        yield room


async def join(client: TestClient, room: str, name: str) -> Message[Any]:
    """JOIN and return the joiner's own JOINED notice (published to the room, joiner included)."""
    await client.send(Join, {"room": room, "name": name})
    notice = await client.receive()
    assert (notice.type, notice.payload["room"], notice.payload["name"]) == ("JOINED", room, name), notice
    return notice


# -- the router, in memory ------------------------------------------------------------------


async def test_join_publishes_joined_to_the_room(chat: Chat) -> None:
    """A JOIN is announced to everyone in the room, the joiner included, with the room size."""
    ada, bob = await chat.connect(), await chat.connect()
    first = await join(ada, "lobby", "ada")
    assert first.payload == {"room": "lobby", "name": "ada", "members": 1}
    assert first.meta == {}  # pub/sub deliveries carry no meta
    await join(bob, "lobby", "bob")
    seen_by_ada = await ada.receive()
    assert (seen_by_ada.type, seen_by_ada.payload) == ("JOINED", {"room": "lobby", "name": "bob", "members": 2})


async def test_say_reaches_every_member(chat: Chat) -> None:
    """SAY is published as ROOM_MSG to every member, the sender included; others see nothing."""
    ada, bob, eve = await chat.connect(), await chat.connect(), await chat.connect()
    await join(ada, "lobby", "ada")
    await join(bob, "lobby", "bob")
    await ada.receive()  # bob's JOINED
    await join(eve, "elsewhere", "eve")
    await ada.send(Say, {"room": "lobby", "text": "hello"})
    for client in (ada, bob):
        msg = await client.receive()
        assert msg.type == "ROOM_MSG"
        assert {k: msg.payload[k] for k in ("room", "id", "name", "text")} == {
            "room": "lobby",
            "id": 1,
            "name": "ada",
            "text": "hello",
        }
        assert isinstance(msg.payload["ts"], int)
    assert await eve.receive_pending() is None


async def test_history_returns_the_last_messages_bounded(chat: Chat) -> None:
    """HISTORY answers the room's most recent messages: at most history_len are kept, limit trims."""
    ada = await chat.connect()
    await join(ada, "lobby", "ada")
    for n in range(5):
        await ada.send(Say, {"room": "lobby", "text": f"m{n}"})
        await ada.receive()
    result = await ada.request(History, {"room": "lobby"}, correlation_id="h-1")
    assert result.type == "HISTORY_RESULT"
    assert result.meta["correlationId"] == "h-1"
    assert [(m.id, m.text) for m in result.payload.messages] == [(3, "m2"), (4, "m3"), (5, "m4")]
    trimmed = await ada.request(History, {"room": "lobby", "limit": 1})
    assert [m.text for m in trimmed.payload.messages] == ["m4"]


async def test_history_of_unknown_room_is_not_found(chat: Chat) -> None:
    """HISTORY of a room nobody joined is RPC_ERROR NOT_FOUND, naming the room."""
    ada = await chat.connect()
    with pytest.raises(RpcError) as caught:
        await ada.request(History, {"room": "nowhere"}, correlation_id="h-2")
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.details == {"room": "nowhere"}
    assert caught.value.meta == {"correlationId": "h-2"}
    assert caught.value.payload["retryable"] is False


async def test_bad_room_name_is_invalid_argument(chat: Chat) -> None:
    """A room name outside the pattern is refused by the schema: ERROR INVALID_ARGUMENT with issues."""
    ada = await chat.connect()
    await ada.send(Join, {"room": "Not A Room!", "name": "ada"})
    error = await ada.receive()
    assert error.type == "ERROR"
    assert error.payload["code"] == "INVALID_ARGUMENT"
    paths = [issue["path"] for issue in error.payload["details"]["issues"]]
    assert ["payload", "room"] in paths


async def test_bad_history_limit_is_rpc_error_with_correlation_id(chat: Chat) -> None:
    """An RPC whose payload fails its schema is answered RPC_ERROR INVALID_ARGUMENT to its correlationId."""
    ada = await chat.connect()
    await join(ada, "lobby", "ada")
    with pytest.raises(RpcError) as caught:
        await ada.request(History, {"room": "lobby", "limit": 0}, correlation_id="h-3")
    assert caught.value.code == "INVALID_ARGUMENT"
    assert caught.value.meta == {"correlationId": "h-3"}


async def test_room_full_is_an_application_error(chat: Chat) -> None:
    """Joining a room at its member cap is ERROR ROOM_FULL (retryable, with a retry delay)."""
    ada, bob, cat = await chat.connect(), await chat.connect(), await chat.connect()
    await join(ada, "lobby", "ada")
    await join(bob, "lobby", "bob")
    await cat.send(Join, {"room": "lobby", "name": "cat"})
    error = await cat.receive()
    assert error.type == "ERROR"
    assert error.payload == {
        "code": ROOM_FULL,
        "message": "Room 'lobby' is full",
        "details": {"room": "lobby", "limit": 2},
        "retryAfterMs": 10_000,
        "retryable": True,
    }
    who = await ada.request(Who, {"room": "lobby"})
    assert who.payload.members == ["ada", "bob"]


async def test_say_before_join_is_failed_precondition(chat: Chat) -> None:
    """SAY in a room you are not in is refused by the route's middleware; nothing is published."""
    ada, bob = await chat.connect(), await chat.connect()
    await join(ada, "lobby", "ada")
    await bob.send(Say, {"room": "lobby", "text": "sneaky"})
    error = await bob.receive()
    assert (error.type, error.payload["code"]) == ("ERROR", "FAILED_PRECONDITION")
    assert await ada.receive_pending() is None


async def test_taken_nickname_is_already_exists(chat: Chat) -> None:
    """A nickname already used in the room is ERROR ALREADY_EXISTS."""
    ada, other = await chat.connect(), await chat.connect()
    await join(ada, "lobby", "ada")
    await other.send(Join, {"room": "lobby", "name": "ada"})
    error = await other.receive()
    assert (error.type, error.payload["code"]) == ("ERROR", "ALREADY_EXISTS")


async def test_leave_and_disconnect_publish_left(chat: Chat) -> None:
    """LEAVE and a closed connection both announce LEFT to the room and update WHO."""
    ada, bob = await chat.connect(), await chat.connect()
    await join(ada, "lobby", "ada")
    await join(bob, "lobby", "bob")
    await ada.receive()  # bob's JOINED
    await bob.send(Leave, {"room": "lobby"})
    for client in (ada, bob):
        left = await client.receive()
        assert (left.type, left.payload) == ("LEFT", {"room": "lobby", "name": "bob", "members": 1})
    assert (await ada.request(Who, {"room": "lobby"})).payload.members == ["ada"]

    await join(bob, "lobby", "bob")
    await ada.receive()  # JOINED again
    await bob.close()
    left = await ada.receive()
    assert (left.type, left.payload) == ("LEFT", {"room": "lobby", "name": "bob", "members": 1})


async def test_who_of_unknown_room_is_not_found(chat: Chat) -> None:
    """WHO of a room nobody joined is RPC_ERROR NOT_FOUND."""
    ada = await chat.connect()
    with pytest.raises(RpcError) as caught:
        await ada.request(Who, {"room": "ghosts"})
    assert caught.value.code == "NOT_FOUND"


async def test_rooms_in_memory_are_bounded(chat: Chat) -> None:
    """Past max_rooms, an empty room is forgotten; when every room is busy, RESOURCE_EXHAUSTED."""
    ada, bob = await chat.connect(), await chat.connect()
    await join(ada, "one", "ada")
    await join(bob, "two", "bob")
    await ada.send(Join, {"room": "three", "name": "ada"})
    error = await ada.receive()
    assert (error.type, error.payload["code"]) == ("ERROR", "RESOURCE_EXHAUSTED")
    assert error.payload["retryAfterMs"] == 5000

    await bob.send(Leave, {"room": "two"})
    await bob.receive()  # LEFT
    await join(ada, "three", "ada")  # room "two" is empty: it is forgotten to make space
    with pytest.raises(RpcError) as caught:
        await ada.request(History, {"room": "two"})
    assert caught.value.code == "NOT_FOUND"


# -- the real server -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_chat() -> AsyncIterator[Server]:
    async with Server(create_router(), host="127.0.0.1", port=0, static_files=STATIC_FILES) as server:
        yield server


@contextlib.asynccontextmanager
async def ws_client(url: str) -> AsyncIterator[ClientConnection]:
    async with connect(url, proxy=None, open_timeout=5, close_timeout=2) as ws:
        welcome = await recv(ws)
        assert welcome["type"] == "WELCOME"
        yield ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        frame = json.loads(await ws.recv())
    assert isinstance(frame, dict)
    return frame


async def recv_type(ws: ClientConnection, type_name: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame of ``type_name`` (frames of other types before it are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await recv(ws, timeout)
            if frame["type"] == type_name:
                return frame


async def send(ws: ClientConnection, type_name: str, payload: dict[str, Any], **meta: Any) -> None:
    await ws.send(json.dumps({"type": type_name, "meta": meta, "payload": payload}))


async def test_server_serves_the_page_and_the_socket_on_one_port() -> None:
    """GET / is the HTML page, GET /chat.js its script, and / also accepts the WebSocket."""
    async with running_chat() as server, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{server.port}"
        async with http.get(f"{base}/", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            page = await resp.text()
        assert "<title>wskit chat</title>" in page
        assert 'src="/chat.js"' in page
        async with http.get(f"{base}/chat.js", timeout=aiohttp.ClientTimeout(total=5)) as resp:
            assert resp.status == 200
            assert "javascript" in resp.content_type
        async with ws_client(server.url) as ws:
            await send(ws, "WHO", {"room": "lobby"}, correlationId="w-1")
            answer = await recv(ws)
            assert answer["type"] == "RPC_ERROR"
            assert answer["meta"] == {"correlationId": "w-1"}
            assert answer["payload"]["code"] == "NOT_FOUND"


async def test_two_socket_clients_chat_through_the_server() -> None:
    """Two real WebSocket clients join a room, talk, and read the history over the wire."""
    async with running_chat() as server, ws_client(server.url) as ada, ws_client(server.url) as bob:
        await send(ada, "JOIN", {"room": "lobby", "name": "ada"})
        assert (await recv(ada))["payload"] == {"room": "lobby", "name": "ada", "members": 1}
        await send(bob, "JOIN", {"room": "lobby", "name": "bob"})
        assert (await recv(bob))["payload"]["name"] == "bob"
        assert (await recv(ada))["payload"]["name"] == "bob"

        await send(bob, "SAY", {"room": "lobby", "text": "hi ada"})
        for ws in (ada, bob):
            frame = await recv(ws)
            assert frame["type"] == "ROOM_MSG"
            assert list(frame) == ["type", "payload"]  # deliveries carry no meta
            assert (frame["payload"]["name"], frame["payload"]["text"]) == ("bob", "hi ada")

        await send(ada, "HISTORY", {"room": "lobby"}, correlationId="h-1", timeoutMs=2000)
        result = await recv(ada)
        assert result["type"] == "HISTORY_RESULT"
        assert result["meta"] == {"correlationId": "h-1"}
        assert [m["text"] for m in result["payload"]["messages"]] == ["hi ada"]


# -- a real browser --------------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


class DevTools:
    """A minimal Chrome DevTools Protocol client over one browser-level WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            future = self._waiting.pop(msg.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(msg)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        request: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            request["sessionId"] = session
        await self.ws.send(json.dumps(request))
        async with asyncio.timeout(timeout):
            answer = await future
        if "error" in answer:
            raise AssertionError(f"DevTools {method} failed: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Page:
    """One browser tab, attached with a flat DevTools session."""

    def __init__(self, devtools: DevTools, session: str) -> None:
        self.devtools = devtools
        self.session = session

    async def evaluate(self, expression: str) -> Any:
        result = await self.devtools.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = 10.0, what: str = "") -> Any:
        """Poll ``expression`` until it is truthy; fail after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                state = await self.evaluate("document.body ? document.body.innerText : '<no body>'")
                raise AssertionError(f"timed out waiting for {what or expression}; page shows:\n{state}")
            await asyncio.sleep(0.05)


def _launch(binary: str, profile: Path) -> subprocess.Popen[bytes]:
    """Start ``binary`` headless, DevTools on a free port of 127.0.0.1, output to a log beside ``profile``."""
    profile.mkdir()
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    with (profile.parent / "chromium.log").open("wb") as log:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


def _devtools_url(profile: Path) -> str | None:
    """The browser's DevTools WebSocket URL, once it has written ``DevToolsActivePort``."""
    try:
        lines = (profile / "DevToolsActivePort").read_text().split()
    except FileNotFoundError:
        return None
    return f"ws://127.0.0.1:{lines[0]}{lines[1]}" if len(lines) >= 2 else None


def _log_tail(profile: Path) -> str:
    return (profile.parent / "chromium.log").read_text(errors="replace")[-2000:]


@contextlib.asynccontextmanager
async def headless_browser(binary: str, profile: Path) -> AsyncIterator[DevTools]:
    """Start ``binary`` headless; yield a DevTools client connected to it; stop it afterwards."""
    proc = _launch(binary, profile)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        url = None
        while url is None:
            if proc.poll() is not None or loop.time() > deadline:
                raise AssertionError(f"Chromium did not start (exit {proc.returncode}); its log:\n{_log_tail(profile)}")
            await asyncio.sleep(0.05)
            url = _devtools_url(profile)
        async with connect(url, proxy=None, max_size=None, open_timeout=10, close_timeout=2) as ws:
            devtools = DevTools(ws)
            try:
                yield devtools
            finally:
                with contextlib.suppress(Exception):
                    await devtools.call("Browser.close", timeout=3)
                await devtools.close()
    finally:
        await _stop(proc)


async def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the browser we started (its whole process group: renderers, GPU and zygote helpers)."""
    try:
        await asyncio.to_thread(proc.wait, 5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # helpers left behind by the main process


async def test_browser_chats_with_a_socket_client(tmp_path: Path) -> None:
    """Headless Chromium runs the page: joins, sends, shows messages and errors, and reconnects."""
    binary = find_browser()
    if binary is None:
        unavailable(
            f"no Chromium found ({', '.join(BROWSERS)} on PATH, or /usr/bin/chromium): apt-get install -y chromium"
        )

    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(running_chat())
        devtools = await stack.enter_async_context(headless_browser(binary, tmp_path / "profile"))
        bob = await stack.enter_async_context(ws_client(server.url))
        await send(bob, "JOIN", {"room": "lobby", "name": "bob"})
        await recv_type(bob, "JOINED")

        target = await devtools.call("Target.createTarget", {"url": "about:blank"})
        attached = await devtools.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(devtools, attached["sessionId"])
        await devtools.call("Page.navigate", {"url": f"http://127.0.0.1:{server.port}/"}, session=page.session)
        await page.wait_for(
            "document.readyState === 'complete' && document.getElementById('status')?.dataset.state === 'open'"
            " && !!window.wskitChat?.clientId",
            what="the page to connect",
        )

        # a room name the schema refuses: the page shows the server's error code
        await page.evaluate(
            "document.getElementById('nickname').value = 'ada';"
            "document.getElementById('room').value = 'Bad Room';"
            "document.getElementById('join-form').requestSubmit(); true"
        )
        await page.wait_for(
            "!!document.querySelector('#errors li[data-code=\"INVALID_ARGUMENT\"]')", what="the error to show"
        )

        await page.evaluate(
            "document.getElementById('room').value = 'lobby';document.getElementById('join-form').requestSubmit(); true"
        )
        await page.wait_for("!document.getElementById('text').disabled", what="the join to complete")
        joined = await recv_type(bob, "JOINED")
        assert joined["payload"] == {"room": "lobby", "name": "ada", "members": 2}
        await page.wait_for(f"{MEMBERS} === 'ada,bob'", what="WHO to list both members")

        await page.evaluate(
            "document.getElementById('text').value = 'hello from chromium';"
            "document.getElementById('send-form').requestSubmit(); true"
        )
        await page.wait_for(f"{TEXTS}.includes('hello from chromium')", what="the browser's own message")
        said = await recv_type(bob, "ROOM_MSG")
        assert (said["payload"]["name"], said["payload"]["text"]) == ("ada", "hello from chromium")

        await send(bob, "SAY", {"room": "lobby", "text": "hi from python"})
        await page.wait_for(f"{TEXTS}.includes('hi from python')", what="the Python client's message")
        assert await page.evaluate(f"{TEXTS}.join('|')") == "hello from chromium|hi from python"

        # switching rooms leaves the old one (bob sees LEFT) and starts the new one clean
        await page.evaluate(
            "document.getElementById('room').value = 'garden';"
            "document.getElementById('join-form').requestSubmit(); true"
        )
        await page.wait_for(
            "document.getElementById('room-title').textContent === '#garden'"
            " && !document.getElementById('text').disabled",
            what="the switch to #garden",
        )
        left = await recv_type(bob, "LEFT")
        assert left["payload"] == {"room": "lobby", "name": "ada", "members": 1}
        await page.wait_for(f"{MEMBERS} === 'ada'", what="WHO of #garden")
        items = "[...document.querySelectorAll('#messages li')].map(e => e.textContent)"
        assert await page.evaluate(items) == ["ada joined (1 here)"]

        # the server goes away (graceful: SERVER_SHUTDOWN, then 1001): the page says so and
        # waits to reconnect by itself, still in its room (what is said now is queued)
        port = server.port
        await server.stop()
        await page.wait_for(
            "document.getElementById('status').dataset.state === 'reconnecting'"
            " && !document.getElementById('text').disabled",
            what="the page to notice the close",
        )
        assert "Reconnecting" in await page.evaluate("document.getElementById('status').textContent")

        # a new server on the same port: the page rejoins the room by itself (its history is new)
        await stack.enter_async_context(Server(create_router(), host="127.0.0.1", port=port, static_files=STATIC_FILES))
        await page.wait_for(
            "document.getElementById('status').dataset.state === 'open'", timeout=20, what="the page to reconnect"
        )
        await page.wait_for(f"{MEMBERS} === 'ada'", what="WHO after the rejoin")
        assert await page.evaluate(f"{TEXTS}.length") == 0


TEXTS = "[...document.querySelectorAll('#messages li.message .text')].map(e => e.textContent)"
MEMBERS = "[...document.querySelectorAll('#members li')].map(e => e.textContent).join(',')"
