"""A rooms chat on wskit: the demo behind ``make run``.

Clients JOIN a room under a nickname, SAY things to it and LEAVE it. Everything said is
published to the room's topic as ROOM_MSG; joins and departures are published as JOINED
and LEFT notices. Two RPCs read state: HISTORY (the room's last messages, kept in memory
and bounded) and WHO (who is in a room).

Errors the demo shows on purpose:

* a malformed room name, nickname or text is refused by the schema (``INVALID_ARGUMENT``);
* HISTORY or WHO of a room nobody ever joined is ``NOT_FOUND``;
* SAY in a room you have not joined is ``FAILED_PRECONDITION`` (per-route middleware);
* a nickname already used in the room is ``ALREADY_EXISTS``;
* a room at its member cap answers JOIN with the application code ``ROOM_FULL``;
* too many rooms in memory at once is ``RESOURCE_EXHAUSTED``.

Every bound is a :class:`ChatLimits` field; :func:`create_router` builds an independent chat
(tests make small ones), and ``router`` is the one ``python -m examples.chat`` serves.

Reconnecting without losing messages: with ``ChatLimits(recoverable=True)`` (what ``python -m
examples.chat`` serves) room topics keep history, so every ROOM_MSG, JOINED and LEFT carries
``meta.topic``, ``meta.offset`` and ``meta.epoch``; after JOIN the joiner gets POSITION (where
its subscription starts; not sent to rooms without history). A page that reconnects sends
JOIN with the last ``offset``/``epoch`` it saw and receives what was said meanwhile, in
order, before live messages, or
``FAILED_PRECONDITION`` ``{reason: "recovery"}`` when the history no longer covers the gap
(then it reloads with HISTORY). JOIN with ``leave`` switches rooms: the old room is left only
once the new one is joined, so a refused JOIN (a bad room name, a full room) leaves the client
where it was.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from wskit import Context, ErrorCode, Router, WsKitError, message, rpc

__all__ = [
    "ROOM_FULL",
    "ChatLimits",
    "ChatMessage",
    "ChatState",
    "History",
    "HistoryRequest",
    "HistoryResult",
    "Join",
    "JoinPayload",
    "Joined",
    "Leave",
    "LeavePayload",
    "Left",
    "MemberNotice",
    "Position",
    "PositionPayload",
    "RoomMsg",
    "Say",
    "SayPayload",
    "Welcome",
    "WelcomePayload",
    "Who",
    "WhoRequest",
    "WhoResult",
    "create_router",
    "room_topic",
    "router",
]

#: The application error code sent when a room is at its member cap.
ROOM_FULL: Final = "ROOM_FULL"

# -- contracts -----------------------------------------------------------------------------

ROOM_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,31}$"
NICKNAME_PATTERN: Final = r"^[\w.-]+( [\w.-]+)*$"


def _matching(pattern: str, kind: str, rule: str) -> Any:
    """A str type checked against ``pattern`` whose refusal is ``rule``, a sentence a person
    reads in the page's error list (pydantic's own message would show the regex), while the
    exported contract still carries the pattern."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError(kind, rule)
        return value

    schema = {"type": "string", "pattern": pattern, "description": rule}
    return Annotated[str, AfterValidator(check), WithJsonSchema(schema)]


#: Lower-case letters, digits, ``-`` and ``_``; starts with a letter or digit; 1-32 characters.
RoomName = _matching(
    ROOM_PATTERN,
    "room_name",
    "A room name is 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit",
)
#: 1-24 characters: words of letters, digits, ``_``, ``.`` or ``-`` separated by single spaces.
Nickname = Annotated[
    _matching(
        NICKNAME_PATTERN,
        "nickname",
        "A nickname is words of letters, digits, '_', '.' or '-' separated by single spaces",
    ),
    Field(max_length=24),
]


class JoinPayload(BaseModel):
    room: RoomName
    name: Nickname
    #: the last position this client saw in the room (both or neither): rejoin from there
    offset: int | None = Field(default=None, ge=0)
    epoch: str | None = Field(default=None, min_length=1, max_length=128)
    #: a room to leave once this one is joined (switching rooms without a LEAVE first)
    leave: RoomName | None = None


class PositionPayload(BaseModel):
    """Where the joiner's subscription to ``room`` starts: the offset of the last message it
    has, in ``epoch``. Later deliveries carry their own in ``meta``."""

    room: str
    offset: int
    epoch: str


class LeavePayload(BaseModel):
    room: RoomName


class SayPayload(BaseModel):
    room: RoomName
    text: str = Field(min_length=1, max_length=500)


class ChatMessage(BaseModel):
    """One message said in a room; ``id`` increases per room (clients use it to de-duplicate)."""

    room: str
    id: int
    name: str
    text: str
    ts: int  # when the server received it, ms since the epoch


class MemberNotice(BaseModel):
    """Someone joined or left ``room``; ``members`` is the room's size afterwards."""

    room: str
    name: str
    members: int


class WelcomePayload(BaseModel):
    client_id: str
    max_members: int
    history_len: int


class HistoryRequest(BaseModel):
    room: RoomName
    limit: int = Field(default=50, ge=1, le=1000)


class HistoryResult(BaseModel):
    room: str
    messages: list[ChatMessage]


class WhoRequest(BaseModel):
    room: RoomName


class WhoResult(BaseModel):
    room: str
    members: list[str]


# client -> server
Join = message("JOIN", JoinPayload)
Leave = message("LEAVE", LeavePayload)
Say = message("SAY", SayPayload)
# server -> client
Welcome = message("WELCOME", WelcomePayload)
RoomMsg = message("ROOM_MSG", ChatMessage)
Joined = message("JOINED", MemberNotice)
Position = message("POSITION", PositionPayload)
Left = message("LEFT", MemberNotice)
# RPCs
History = rpc("HISTORY", HistoryRequest, "HISTORY_RESULT", HistoryResult)
Who = rpc("WHO", WhoRequest, "WHO_RESULT", WhoResult)


def room_topic(room: str) -> str:
    """The pub/sub topic of a room."""
    return f"room:{room}"


# -- state ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """The demo's bounds (everything that grows with input has one)."""

    #: members per room; one more is refused with ``ROOM_FULL``
    max_members: int = 50
    #: messages kept per room for HISTORY (older ones are forgotten)
    history_len: int = 100
    #: rooms kept in memory; empty rooms are forgotten, least recently used first
    max_rooms: int = 1000
    #: room topics keep history (deliveries carry their position; JOIN can resume from one)
    recoverable: bool = False
    #: messages each room's topic history keeps for resuming clients (with ``recoverable``)
    recovery_len: int = 1000


@dataclass(slots=True)
class Room:
    """One room: its members (client id -> nickname) and its recent messages."""

    name: str
    history: deque[ChatMessage]
    members: dict[str, str] = field(default_factory=dict)
    next_id: int = 1


class ChatState:
    """All rooms of one chat, in memory (a single process: see the README for scale-out)."""

    def __init__(self, limits: ChatLimits) -> None:
        self.limits = limits
        self._rooms: OrderedDict[str, Room] = OrderedDict()  # least recently used first

    def get(self, name: str) -> Room | None:
        """The room called ``name``, or None when nobody joined it (or it was forgotten)."""
        room = self._rooms.get(name)
        if room is not None:
            self._rooms.move_to_end(name)
        return room

    def require(self, name: str) -> Room:
        """The room called ``name``; raises ``NOT_FOUND`` when there is none."""
        room = self.get(name)
        if room is None:
            raise WsKitError(ErrorCode.NOT_FOUND, f"No room named {name!r}", details={"room": name})
        return room

    def get_or_create(self, name: str) -> Room:
        """The room called ``name``, created (and an empty one evicted) when needed.

        Raises ``RESOURCE_EXHAUSTED`` when ``max_rooms`` rooms all have members.
        """
        room = self.get(name)
        if room is not None:
            return room
        if len(self._rooms) >= self.limits.max_rooms:
            idle = next((key for key, candidate in self._rooms.items() if not candidate.members), None)
            if idle is None:
                raise WsKitError(
                    ErrorCode.RESOURCE_EXHAUSTED,
                    "Too many active rooms; try again later",
                    details={"limit": self.limits.max_rooms},
                    retry_after_ms=5000,
                )
            del self._rooms[idle]
        room = Room(name, deque(maxlen=self.limits.history_len))
        self._rooms[name] = room
        return room

    def rooms_of(self, client_id: str) -> list[Room]:
        """The rooms ``client_id`` is a member of."""
        return [room for room in self._rooms.values() if client_id in room.members]


# -- the router ----------------------------------------------------------------------------

Next = Callable[[], Awaitable[None]]


def create_router(limits: ChatLimits | None = None) -> Router[Any]:
    """A chat router with its own in-memory state."""
    limits = limits or ChatLimits()
    state = ChatState(limits)
    router: Router[Any] = Router()
    # what the handlers below send and publish: the exported contract (AsyncAPI, types) lists them
    router.emits(Welcome, Position)
    router.emits(RoomMsg, Joined, Left, topics=[room_topic("*")])
    if limits.recoverable:
        router.enable_history(room_topic("*"), max_len=limits.recovery_len, ttl_s=3600)

    async def require_member(ctx: Context[Any], call_next: Next) -> None:
        """Route middleware: only members of ``payload.room`` may go on."""
        room = state.get(ctx.payload.room)
        if room is None or ctx.client_id not in room.members:
            raise WsKitError(
                ErrorCode.FAILED_PRECONDITION,
                "Join the room before speaking in it",
                details={"room": ctx.payload.room},
            )
        await call_next()

    @router.on_open
    async def welcome(ctx: Context[None]) -> None:
        shown = WelcomePayload(client_id=ctx.client_id, max_members=limits.max_members, history_len=limits.history_len)
        await ctx.send(Welcome, shown)

    @router.on(Join)
    async def join(ctx: Context[JoinPayload]) -> None:
        name, nick = ctx.payload.room, ctx.payload.name
        offset, epoch = ctx.payload.offset, ctx.payload.epoch
        if (offset is None) != (epoch is None):
            raise WsKitError(
                ErrorCode.INVALID_ARGUMENT,
                "To rejoin from a position give both offset and epoch",
                details={"room": name},
            )
        room = state.get_or_create(name)
        current = room.members.get(ctx.client_id)
        if current == nick:
            if offset is not None:  # a rejoin of a connection already in: what it missed
                await _send_position(ctx, name, await ctx.subscribe(room_topic(name), offset, epoch))
            return  # joining twice under the same name changes nothing else
        if nick in room.members.values():
            raise WsKitError(
                ErrorCode.ALREADY_EXISTS, f"The nickname {nick!r} is taken in this room", details={"name": nick}
            )
        if current is None and len(room.members) >= limits.max_members:
            raise WsKitError(
                ROOM_FULL,
                f"Room {name!r} is full",
                details={"room": name, "limit": limits.max_members},
                retryable=True,
                retry_after_ms=10_000,
            )
        # claim the place before the first await, so concurrent joins cannot overfill the room
        room.members[ctx.client_id] = nick
        try:
            # from the client's last position when it gave one: what it missed arrives first
            position = await ctx.subscribe(room_topic(name), offset, epoch)
        except BaseException:
            if current is None:
                room.members.pop(ctx.client_id, None)
            else:
                room.members[ctx.client_id] = current
            raise
        await _send_position(ctx, name, position)
        notice = MemberNotice(room=name, name=nick, members=len(room.members))
        await ctx.publish(room_topic(name), Joined, notice)
        left = ctx.payload.leave
        if left is not None and left != name:
            # only now: a JOIN refused above (bad name, room full) left the client where it was
            previous = state.get(left)
            if previous is not None and ctx.client_id in previous.members:
                await _depart(router, previous, ctx.client_id)
                await ctx.unsubscribe(room_topic(left))

    @router.on(Leave)
    async def leave(ctx: Context[LeavePayload]) -> None:
        room = state.get(ctx.payload.room)
        if room is None or ctx.client_id not in room.members:
            return  # leaving a room you are not in is a no-op
        await _depart(router, room, ctx.client_id)
        await ctx.unsubscribe(room_topic(room.name))

    @router.on(Say, middleware=[require_member])
    async def say(ctx: Context[SayPayload]) -> None:
        room = state.require(ctx.payload.room)
        msg = ChatMessage(
            room=room.name,
            id=room.next_id,
            name=room.members[ctx.client_id],
            text=ctx.payload.text,
            ts=ctx.received_at,
        )
        room.next_id += 1
        room.history.append(msg)
        await ctx.publish(room_topic(room.name), RoomMsg, msg)

    @router.rpc(History)
    async def history(ctx: Context[HistoryRequest]) -> None:
        room = state.require(ctx.payload.room)
        limit = ctx.payload.limit
        recent = list(room.history)[-limit:]
        await ctx.reply(HistoryResult(room=room.name, messages=recent))

    @router.rpc(Who)
    async def who(ctx: Context[WhoRequest]) -> None:
        room = state.require(ctx.payload.room)
        await ctx.reply(WhoResult(room=room.name, members=sorted(room.members.values())))

    @router.on_close
    async def gone(ctx: Context[None]) -> None:
        # on_close runs before the connection leaves its topics (ctx.topics still lists
        # them) and the rooms still list it: tell each room it left (LEFT)
        for room in state.rooms_of(ctx.client_id):
            await _depart(router, room, ctx.client_id)

    return router


async def _send_position(ctx: Context[Any], room: str, position: tuple[int, str] | None) -> None:
    """Tell the joiner where its subscription starts (POSITION), on rooms that keep history
    (a page without recovery, or a WS-Kit client, gets the frames it always got)."""
    if position is not None:
        await ctx.send(Position, PositionPayload(room=room, offset=position[0], epoch=position[1]))


async def _depart(router: Router[Any], room: Room, client_id: str) -> None:
    """Remove ``client_id`` from ``room`` and tell the room (LEFT)."""
    nick = room.members.pop(client_id, None)
    if nick is None:
        return
    notice = MemberNotice(room=room.name, name=nick, members=len(room.members))
    await router.publish(room_topic(room.name), Left, notice)


#: The demo's router (``python -m examples.chat`` serves it).
router = create_router()
