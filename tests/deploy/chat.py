"""A member of the demo chat (examples/chat) as its page behaves: joins a room and, after each
reconnect, joins again from the last position it has, so it misses nothing said meanwhile.

The Python client resubscribes the topics *it* subscribed to; a room is joined by the JOIN
message, whose handler subscribes the connection, so rejoining is this member's job (the
page, chat.js, does the same). Everything the member sees is kept for the test to check:
what it heard in order, its connections' client ids, and how long each reconnect took.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any

from examples.chat.app import Join, Joined, Left, Position, RoomMsg, Say, Welcome, room_topic
from tests.support.waiting import PATIENCE_S

from wskit.client import Backoff, Client, ClientError, Message, StateChange

__all__ = ["Member", "Publisher"]


class Member:
    """One chat member named ``name`` in ``room`` at ``url``."""

    def __init__(
        self,
        name: str,
        url: str,
        room: str,
        *,
        context: ssl.SSLContext,
        source: str = "",
        since: tuple[int, str] | None = None,
    ) -> None:
        self.name = name
        self.room = room
        #: the client address nginx sees (the relay's source address)
        self.source = source
        self.client = Client(
            url,
            ssl=context,
            on_state=self._on_state,
            on_error=self._on_error,
            # a deploy is not an outage: retry soon (the server's retryAfterMs still applies)
            backoff=Backoff(initial_delay=0.2, max_delay=2.0),
            # sent as-is through nginx: it must not change who the server thinks this is
            headers={"X-Forwarded-For": "203.0.113.7"},
        )
        self.client.on(Welcome, self._welcome)
        self.client.on(Position, self._position)
        self.client.on(RoomMsg, self._message)
        for notice in (Joined, Left):  # heard, not checked: members come and go in a deploy
            self.client.on(notice, lambda msg: None)
        #: the client id of each connection, in order
        self.client_ids: list[str] = []
        #: (text, offset) of every ROOM_MSG heard, in order
        self.heard: list[tuple[str, int]] = []
        #: seconds from losing a connection to the next one being open, per reconnect
        self.reconnects: list[float] = []
        #: server errors that answered no request (a refused SAY, a refused JOIN)
        self.errors: list[ClientError] = []
        #: set while joined on the current connection
        self.joined = asyncio.Event()
        #: where the first JOIN starts from (None: from now); then the POSITION answered to it
        self.start = since
        #: the POSITION answered to the last JOIN
        self.position: tuple[int, str] | None = None
        self._lost_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def topic(self) -> str:
        return room_topic(self.room)

    async def connect(self) -> None:
        await self.client.connect(timeout=PATIENCE_S)
        await self._join()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()

    def situation(self) -> str:
        """What this member is at, for failure messages."""
        return (
            f"state {self.client.state}, joined {self.joined.is_set()}, connections {self.client_ids}, "
            f"errors {self.errors[-3:]}, last heard {self.heard[-3:]}"
        )

    def texts(self) -> list[str]:
        return [text for text, _ in self.heard]

    async def _join(self) -> None:
        """JOIN, from the last position seen when there is one; wait for the POSITION answer."""
        self.joined.clear()
        payload: dict[str, Any] = {"room": self.room, "name": self.name}
        seen = self.client.positions.get(self.topic)
        start = (seen.offset, seen.epoch) if seen is not None else self.start
        if start is not None:
            payload.update(offset=start[0], epoch=start[1])
        await self.client.send(Join, payload)
        await asyncio.wait_for(self.joined.wait(), PATIENCE_S)

    async def _rejoin(self) -> None:
        # a connection lost again before the answer: the next one joins anew
        with contextlib.suppress(TimeoutError, ClientError):
            await self._join()

    # -- what the client reports -----------------------------------------------------------

    def _on_state(self, change: StateChange) -> None:
        now = time.monotonic()
        if change.old == "open":
            self._lost_at = now
            self.joined.clear()
        elif change.new == "open" and self._lost_at is not None:
            self.reconnects.append(now - self._lost_at)
            self._lost_at = None
            task = asyncio.get_running_loop().create_task(self._rejoin())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_error(self, error: Exception) -> None:
        if isinstance(error, ClientError):
            self.errors.append(error)

    def _welcome(self, msg: Message[Any]) -> None:
        self.client_ids.append(msg.payload.client_id)

    def _position(self, msg: Message[Any]) -> None:
        if msg.payload.room == self.room:
            self.position = (msg.payload.offset, msg.payload.epoch)
            if self.start is None:
                self.start = self.position
            self.joined.set()

    def _message(self, msg: Message[Any]) -> None:
        if msg.meta.get("topic") == self.topic:
            self.heard.append((msg.payload.text, int(msg.meta["offset"])))


class Publisher(Member):
    """A member that says numbered messages (``m1``, ``m2``...) at a steady pace, pausing
    while it is not joined (as the page does while reconnecting).

    It does not wait for each message to come back: what counts as published is what the
    room's history holds (an auditor reads it, see the test). A SAY can be refused
    (``UNAVAILABLE`` from a draining instance, ``FAILED_PRECONDITION`` when it went out on a
    new connection before the JOIN did): those are counted in :attr:`Member.errors`.
    """

    def __init__(self, name: str, url: str, room: str, *, context: ssl.SSLContext, source: str = "") -> None:
        super().__init__(name, url, room, context=context, source=source)
        #: the texts sent, in order
        self.sent: list[str] = []

    async def say_until(self, done: asyncio.Event, *, every_s: float, at_least: int, at_most: int) -> None:
        """Say a message every ``every_s`` until ``done`` is set and ``at_least`` are sent,
        never more than ``at_most``."""
        while len(self.sent) < at_most and not (done.is_set() and len(self.sent) >= at_least):
            try:
                await asyncio.wait_for(self.joined.wait(), PATIENCE_S)
            except TimeoutError:
                raise AssertionError(
                    f"{self.name} not joined again within {PATIENCE_S} s ({self.situation()})"
                ) from None
            text = f"m{len(self.sent) + 1}"
            await self.client.send(Say, {"room": self.room, "text": text})
            self.sent.append(text)
            await asyncio.sleep(every_s)
