"""The chat demo's server side of reconnecting (issue 16, item 2): JOIN from a position,
switching rooms without leaving first, readable refusals, and the favicon a browser asks for."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from examples.chat.__main__ import STATIC_FILES
from examples.chat.app import ChatLimits, Join, Say, create_router

from wskit import Server
from wskit.testing import TestClient
from wskit.testing.client import Message

__all__: list[str] = []


@pytest.fixture
async def chat() -> AsyncIterator[Any]:
    router = create_router(ChatLimits(recoverable=True))
    async with contextlib.AsyncExitStack() as stack:

        async def connect() -> TestClient:
            client = await stack.enter_async_context(TestClient(router))
            assert (await client.receive()).type == "WELCOME"
            return client

        yield connect


async def _until(client: TestClient, type_name: str) -> Message[Any]:
    while True:
        msg = await client.receive()
        if msg.type == type_name:
            return msg


async def test_join_sends_the_position_and_deliveries_carry_theirs(chat: Any) -> None:
    """On a recoverable chat JOIN answers POSITION, and every ROOM_MSG carries topic, offset, epoch."""
    ada = await chat()
    await ada.send(Join, {"room": "lobby", "name": "ada"})
    position = await ada.receive()
    assert position.type == "POSITION" and position.payload["room"] == "lobby"
    await _until(ada, "JOINED")
    await ada.send(Say, {"room": "lobby", "text": "hi"})
    said = await _until(ada, "ROOM_MSG")
    assert said.meta["topic"] == "room:lobby"
    assert said.meta["offset"] > position.payload["offset"]
    assert said.meta["epoch"] == position.payload["epoch"]


async def test_rejoin_from_a_position_gets_what_was_missed_in_order(chat: Any) -> None:
    """A page that comes back with its last offset/epoch receives every message said while it
    was away, in order and once, before live ones."""
    ada, bob = await chat(), await chat()
    await ada.send(Join, {"room": "lobby", "name": "ada"})
    await _until(ada, "JOINED")
    await ada.send(Say, {"room": "lobby", "text": "before"})
    seen = await _until(ada, "ROOM_MSG")
    await ada.close()
    await bob.send(Join, {"room": "lobby", "name": "bob"})
    await _until(bob, "JOINED")
    for text in ("one", "two", "three"):
        await bob.send(Say, {"room": "lobby", "text": text})
    back = await chat()
    await back.send(Join, {"room": "lobby", "name": "ada", "offset": seen.meta["offset"], "epoch": seen.meta["epoch"]})
    texts = []
    while len(texts) < 3:
        msg = await back.receive()
        if msg.type == "ROOM_MSG":
            texts.append(msg.payload["text"])
    assert texts == ["one", "two", "three"]


async def test_rejoin_from_a_lost_position_is_failed_precondition(chat: Any) -> None:
    """A position of another epoch is refused FAILED_PRECONDITION {reason: recovery} (reload
    with HISTORY), and the refused JOIN does not keep the client in the room."""
    ada = await chat()
    await ada.send(Join, {"room": "lobby", "name": "ada", "offset": 3, "epoch": "gone"})
    error = await ada.receive()
    assert (error.type, error.payload["code"]) == ("ERROR", "FAILED_PRECONDITION")
    assert error.payload["details"]["reason"] == "recovery"
    await ada.send(Say, {"room": "lobby", "text": "hi"})
    refused = await ada.receive()
    assert refused.payload["code"] == "FAILED_PRECONDITION"  # not a member: "join first"


async def test_offset_without_epoch_is_invalid_argument(chat: Any) -> None:
    """Half a position is refused INVALID_ARGUMENT."""
    ada = await chat()
    await ada.send(Join, {"room": "lobby", "name": "ada", "offset": 3})
    error = await ada.receive()
    assert (error.type, error.payload["code"]) == ("ERROR", "INVALID_ARGUMENT")


async def test_switching_to_a_bad_room_keeps_the_current_one(chat: Any) -> None:
    """JOIN {room: bad, leave: current} is refused before anything changes: the client is still
    in its room (it hears the next message), and the refusal reads as a sentence, no regex."""
    ada, bob = await chat(), await chat()
    for client, name in ((ada, "ada"), (bob, "bob")):
        await client.send(Join, {"room": "lobby", "name": name})
        await _until(client, "JOINED")
    await _until(ada, "JOINED")  # bob's
    await ada.send_raw('{"type":"JOIN","payload":{"room":"Not A Room!","name":"ada","leave":"lobby"}}')
    error = await ada.receive()
    assert error.payload["code"] == "INVALID_ARGUMENT"
    issue = error.payload["details"]["issues"][0]
    assert issue["path"] == ["payload", "room"]
    assert issue["message"].startswith("A room name is 1 to 32 lower-case letters")
    assert "^" not in issue["message"] and "[" not in issue["message"]
    await bob.send(Say, {"room": "lobby", "text": "still there?"})
    assert (await _until(ada, "ROOM_MSG")).payload["text"] == "still there?"


async def test_switching_rooms_leaves_the_old_one_after_joining(chat: Any) -> None:
    """JOIN {room: new, leave: old} joins the new room, then leaves the old one (LEFT there)."""
    ada, bob = await chat(), await chat()
    for client, name in ((ada, "ada"), (bob, "bob")):
        await client.send(Join, {"room": "lobby", "name": name})
        await _until(client, "JOINED")
    await ada.send(Join, {"room": "garden", "name": "ada", "leave": "lobby"})
    left = await _until(bob, "LEFT")
    assert (left.payload["room"], left.payload["name"]) == ("lobby", "ada")
    assert "room:lobby" not in ada.connection.topics and "room:garden" in ada.connection.topics


async def test_favicon_is_not_found() -> None:
    """The icon a browser asks for is 404 on serve()'s aiohttp host, not the upgrade-only 400."""
    async with (
        Server(create_router(), host="127.0.0.1", port=0, static_files=STATIC_FILES, transport="aiohttp") as server,
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.port}/favicon.ico") as res,
    ):
        assert res.status == 404


async def test_switching_to_a_full_room_keeps_the_current_one() -> None:
    """A JOIN the handler refuses (ROOM_FULL) leaves nothing: the old room is only left after
    the new one is joined."""
    router = create_router(ChatLimits(recoverable=True, max_members=1))
    async with TestClient(router) as ada, TestClient(router) as bob, TestClient(router) as eve:
        for client, room, name in ((ada, "lobby", "ada"), (bob, "full", "bob"), (eve, "full", "eve")):
            await _until(client, "WELCOME")
            await client.send(Join, {"room": room, "name": name})
        await _until(ada, "JOINED")
        await ada.send(Join, {"room": "full", "name": "ada", "leave": "lobby"})
        refused = await _until(ada, "ERROR")
        assert refused.payload["code"] == "ROOM_FULL"
        assert "room:lobby" in ada.connection.topics
