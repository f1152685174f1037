"""A small chat that any number of wskit instances serve together through one Redis.

    python examples/redis-multi-instance/app.py --port 8001 --name A --redis redis://127.0.0.1:6379/0

Every instance runs this same file with its own port and name. The instances share
nothing in memory: a message said on one reaches the members connected to the others
through Redis (``RedisBroker``), and so do presence and history.

The protocol (all payloads JSON objects):

* ``JOIN`` (RPC) ``{room, nick, offset?, epoch?}`` → ``JOINED`` ``{room, offset, epoch,
  instance}``: joins ``room:<room>``. The room keeps history, so the answer carries the
  room's position; coming back later with the last ``offset``/``epoch`` seen delivers every
  message missed meanwhile (or ``FAILED_PRECONDITION`` ``{reason: "recovery"}`` when the
  history no longer covers the gap).
* ``SAY`` (event) ``{room, text}`` → ``ROOM_MSG`` ``{room, nick, text, instance}`` to every
  member on every instance, with ``meta.offset``/``meta.epoch``.
* ``WHO`` (RPC) ``{room}`` → ``WHO_RESULT`` ``{room, members: [{client_id, nick,
  instance}]}``: the room's members on all instances (``router.presence``).
* ``$ws:presence`` frames ``{topic, event: "join"|"leave", clientId, userId, data}`` are
  sent to a room's members when someone joins or leaves it, on any instance.

Not for production as it is: there is no authentication. ``JOIN`` takes the nick the client
claims and makes it the connection's ``user_id``, so any client can speak as anyone, and
``router.send_to_user``/``disconnect_user``/``ban_user`` by nick would reach impostors too. A
real app takes the user from a verified token (``JWT_SECRET``, or ``authenticate=``; see
docs/production.md) and never from the payload.
"""

from __future__ import annotations

import argparse
import os

from pydantic import BaseModel, Field

from wskit import Context, ErrorCode, Router, WsKitError, message, rpc, serve
from wskit.pubsub import RedisBroker

Room = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")


class JoinRequest(BaseModel):
    room: str = Room
    nick: str = Field(min_length=1, max_length=32)
    offset: int | None = None
    epoch: str | None = None


class Joined(BaseModel):
    room: str
    offset: int
    epoch: str
    instance: str


class SayPayload(BaseModel):
    room: str = Room
    text: str = Field(min_length=1, max_length=1000)


class RoomMessage(BaseModel):
    room: str
    nick: str
    text: str
    instance: str


class WhoRequest(BaseModel):
    room: str = Room


class MemberInfo(BaseModel):
    client_id: str
    nick: str
    instance: str


class WhoResult(BaseModel):
    room: str
    members: list[MemberInfo]


Join = rpc("JOIN", JoinRequest, "JOINED", Joined)
Say = message("SAY", SayPayload)
RoomMsg = message("ROOM_MSG", RoomMessage)
Who = rpc("WHO", WhoRequest, "WHO_RESULT", WhoResult)


def topic_of(room: str) -> str:
    return f"room:{room}"


def create_router(instance: str) -> Router[dict[str, object]]:
    """The chat, as served by the instance called ``instance`` (shown to users)."""
    router: Router[dict[str, object]] = Router()
    router.enable_history("room:*", max_len=1000, ttl_s=600)
    router.enable_presence_events("room:*")

    @router.rpc(Join)
    async def join(ctx: Context[JoinRequest]) -> None:
        req = ctx.payload
        # presence shows data["public"]; user_id makes router.send_to_user(nick, ...) reach this socket
        ctx.assign_data(user_id=req.nick, public={"nick": req.nick, "instance": instance})
        position = await ctx.subscribe(topic_of(req.room), offset=req.offset, epoch=req.epoch)
        assert position is not None  # room:* keeps history
        offset, epoch = position
        await ctx.reply({"room": req.room, "offset": offset, "epoch": epoch, "instance": instance})

    @router.on(Say)
    async def say(ctx: Context[SayPayload]) -> None:
        topic = topic_of(ctx.payload.room)
        if topic not in ctx.topics:
            raise WsKitError(ErrorCode.FAILED_PRECONDITION, "JOIN the room first", details={"room": ctx.payload.room})
        nick = str(ctx.user_id)
        await ctx.publish(topic, RoomMsg, {**ctx.payload.model_dump(), "nick": nick, "instance": instance})

    @router.rpc(Who)
    async def who(ctx: Context[WhoRequest]) -> None:
        members = await ctx.router.presence(topic_of(ctx.payload.room))
        listed = [
            {
                "client_id": m.client_id,
                "nick": str(m.data.get("nick", m.user_id or "?")),
                "instance": str(m.data.get("instance", "?")),
            }
            for m in members
        ]
        listed.sort(key=lambda m: (m["nick"], m["instance"]))
        await ctx.reply({"room": ctx.payload.room, "members": listed})

    return router


def main() -> None:
    parser = argparse.ArgumentParser(description="One instance of the multi-instance chat.")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--name", default=f"pid{os.getpid()}", help="instance name shown to users")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--namespace", default="wskit-example", help="prefix of every Redis key and channel")
    args = parser.parse_args()
    serve(
        create_router(args.name),
        host="127.0.0.1",
        port=args.port,
        broker=RedisBroker(args.redis, namespace=args.namespace),
    )


if __name__ == "__main__":
    main()
