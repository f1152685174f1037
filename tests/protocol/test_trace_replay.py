"""Replay of the WS-Kit 0.10 reference capture (``data/wskit-wire-trace.jsonl``) over real sockets.

A router mirroring the captured server is served by :class:`wskit.Server`; the client->server
frames of connections A, B and raw are sent in the captured order, and every answer must be
WS-Kit's, except for the documented differences (PROTOCOL.md):

- errors answering a message without correlationId are ``ERROR``, not ``RPC_ERROR``;
- ``retryable`` is added where the catalog has a default for the code;
- where WS-Kit stayed silent (bad input, handler crashes, bad replies) we answer per the errors
  table (:data:`OURS`);
- a handler that replies twice and then errors: the first terminal answer wins (WS-Kit lets
  the error through).

Heartbeat acks are compared ignoring the value of ``meta.ts``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from tests.protocol.wire import (
    ANY_INT,
    Closed,
    Frame,
    Peer,
    SocketPeer,
    Wire,
    assert_usable,
    error,
    http_exchange,
    invalid,
    wait_closed,
)

from wskit import Context, ErrorCode, Router, WsKitError, message, rpc
from wskit.errors import CATALOG, UNSET

TRACE = Path(__file__).parent / "data" / "wskit-wire-trace.jsonl"
REPLAYED = ("A", "B", "raw")


def load_trace() -> list[dict[str, Any]]:
    with TRACE.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# -- a router mirroring the captured server -----------------------------------------------


class N(BaseModel):
    n: int


class Text(BaseModel):
    text: str


class ItemId(BaseModel):
    id: str


class Why(BaseModel):
    why: str


class Q(BaseModel):
    q: str


class SecretOk(BaseModel):
    userId: str
    q: str


class UserId(BaseModel):
    userId: str


class Empty(BaseModel):
    pass


class EventErr(BaseModel):
    code: str
    message: str | None = None


class ErrRpc(BaseModel):
    code: str
    message: str
    retryable: bool | None = None
    retryAfterMs: int | None = None
    withMeta: bool = False


class Steps(BaseModel):
    steps: int


class Room(BaseModel):
    room: str


class Say(BaseModel):
    room: str
    text: str


class DoubleOk(BaseModel):
    reply: int


HINT = {"hint": "from handler"}


def trace_router() -> Router[Any]:
    """The captured server's routes, with payload shapes inferred from the frames."""
    router: Router[Any] = Router()
    pong = message("PONG", N)
    room_msg = message("ROOM_MSG", Say)

    async def require_login(ctx: Context[Any], call_next: Callable[[], Any]) -> None:
        if not ctx.data.get("userId"):
            raise WsKitError(ErrorCode.UNAUTHENTICATED, "Login required")
        await call_next()

    @router.on(message("PING", N))
    async def ping(ctx: Context[N]) -> None:
        await ctx.send(pong, ctx.payload)

    @router.on(message("TAGGED_PING", N))
    async def tagged_ping(ctx: Context[N]) -> None:
        await ctx.send(pong, ctx.payload, meta={"tag": "t1"}, inherit_correlation_id=True)

    @router.rpc(rpc("ECHO_RPC", Text, "ECHO_OK", Text))
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.rpc(rpc("FIND_RPC", ItemId, "FIND_OK", ItemId))
    async def find(ctx: Context[ItemId]) -> None:
        await ctx.error(ErrorCode.NOT_FOUND, f"No item with id {ctx.payload.id}", details={"id": ctx.payload.id})

    @router.rpc(rpc("THROW_RPC", Why, "THROW_OK", Empty))
    async def throw(ctx: Context[Why]) -> None:
        raise RuntimeError(f"thrown on purpose: {ctx.payload.why}")

    @router.on(message("SECRET", Q), middleware=[require_login])
    async def secret(ctx: Context[Q]) -> None:
        await ctx.send(message("SECRET_OK", SecretOk), {"userId": ctx.data["userId"], "q": ctx.payload.q})

    @router.rpc(rpc("WHOAMI_RPC", Empty, "WHOAMI_OK", UserId), middleware=[require_login])
    async def whoami(ctx: Context[Empty]) -> None:
        await ctx.reply({"userId": ctx.data["userId"]})

    @router.on(message("LOGIN", UserId))
    async def login(ctx: Context[UserId]) -> None:
        ctx.assign_data(userId=ctx.payload.userId)
        await ctx.send(message("LOGGED_IN", UserId), ctx.payload)

    @router.on(message("EVENT_ERR", EventErr))
    async def event_err(ctx: Context[EventErr]) -> None:
        p = ctx.payload
        await ctx.error(p.code, p.message, details=HINT if p.message is not None else None)

    @router.rpc(rpc("ERR_RPC", ErrRpc, "ERR_OK", Empty))
    async def err_rpc(ctx: Context[ErrRpc]) -> None:
        p = ctx.payload
        retry_after = p.retryAfterMs if "retryAfterMs" in p.model_fields_set else UNSET
        meta = {"extra": "x"} if p.withMeta else None
        await ctx.error(p.code, p.message, details=HINT, retryable=p.retryable, retry_after_ms=retry_after, meta=meta)

    @router.on(message("BAD_OUT", Empty))
    async def bad_out(ctx: Context[Empty]) -> None:
        await ctx.send(pong, {"n": "not a number"})

    @router.rpc(rpc("BAD_REPLY_RPC", Empty, "BAD_REPLY_OK", N))
    async def bad_reply(ctx: Context[Empty]) -> None:
        await ctx.reply({"n": "not a number"})

    @router.rpc(rpc("DOUBLE_RPC", Empty, "DOUBLE_OK", DoubleOk))
    async def double(ctx: Context[Empty]) -> None:
        await ctx.reply({"reply": 1})
        await ctx.reply({"reply": 2})
        await ctx.error(ErrorCode.INTERNAL, "after reply", retry_after_ms=200)

    @router.rpc(rpc("SLOW_RPC", Steps, "SLOW_DONE", Steps))
    async def slow(ctx: Context[Steps]) -> None:
        for step in range(1, ctx.payload.steps + 1):
            await ctx.progress({"steps": step})
        await ctx.reply(ctx.payload)

    @router.on(message("JOIN", Room))
    async def join(ctx: Context[Room]) -> None:
        await ctx.subscribe(ctx.payload.room)
        await ctx.send(message("JOINED", Room), ctx.payload)

    @router.on(message("LEAVE", Room))
    async def leave(ctx: Context[Room]) -> None:
        await ctx.unsubscribe(ctx.payload.room)
        await ctx.send(message("LEFT", Room), ctx.payload)

    @router.on(message("SAY", Say))
    async def say(ctx: Context[Say]) -> None:
        await ctx.publish(ctx.payload.room, room_msg, ctx.payload)

    @router.on(message("SAY_OTHERS", Say))
    async def say_others(ctx: Context[Say]) -> None:
        await ctx.publish(ctx.payload.room, room_msg, ctx.payload, exclude_self=True)

    @router.on(message("BOOM", Empty))
    async def boom(ctx: Context[Empty]) -> None:
        raise RuntimeError("boom")

    @router.on(message("BYE", Empty))
    async def bye(ctx: Context[Empty]) -> None:
        await ctx.close(4000, "server says bye")

    @router.on_open
    async def opened(ctx: Context[Any]) -> None:
        if ctx.data.get("kick"):
            await ctx.close(4401, "kicked by onOpen")

    return router


def authenticate(request: Any) -> dict[str, Any] | None:
    """The captured server's rules: ``reject`` refuses, ``access_token`` names the user, ``kick`` is kicked."""
    query = request.query_params
    if query.get("reject"):
        return None
    data: dict[str, Any] = {}
    if query.get("access_token"):
        data["userId"] = query["access_token"]
    if query.get("kick"):
        data["kick"] = True
    return data


# -- expected answers -------------------------------------------------------------------------


def _sent(seq: int) -> dict[str, Any]:
    return next(json.loads(r["raw"]) for r in load_trace() if r["seq"] == seq)


def _cid(seq: int) -> str:
    return str(_sent(seq)["meta"]["correlationId"])


def _ours() -> dict[int, list[tuple[str, Any]]]:
    """Our answers where WS-Kit stayed silent, or where we deliberately differ (PROTOCOL.md)."""
    return {
        13: [("A", error("INTERNAL", cid=_cid(13)))],
        14: [("A", invalid(["payload", "n"]))],
        15: [("A", invalid(["payload", "text"], cid=_cid(15)))],
        16: [("A", error("UNIMPLEMENTED", details={"type": "NO_SUCH_TYPE"}))],
        17: [("A", error("UNIMPLEMENTED", cid=_cid(17), details={"type": "NO_SUCH_RPC"}))],
        24: [("A", error("INTERNAL"))],
        38: [("A", error("INTERNAL", cid=_cid(38)))],
        39: [("A", {"type": "DOUBLE_OK", "meta": {"correlationId": _cid(39)}, "payload": {"reply": 1}})],
        72: [("raw", error("INVALID_ARGUMENT"))],
        73: [("raw", error("INVALID_ARGUMENT"))],
        74: [("raw", error("INVALID_ARGUMENT"))],
        77: [("raw", invalid(["meta", "foo"]))],
        80: [("raw", invalid(["meta", "clientId"], ["meta", "receivedAt"]))],
        83: [("raw", invalid(["payload"]))],
        84: [("raw", invalid(["payload", "x"]))],
        89: [("raw", error("INVALID_ARGUMENT", details={"type": "__heartbeat_ack"}))],
        90: [("raw", error("INVALID_ARGUMENT", details={"type": "$ws:open"}))],
        91: [("raw", error("INVALID_ARGUMENT", details={"type": "$ws:rpc-progress"}))],
        96: [("raw", invalid(["meta", "correlationId"]))],
        101: [("raw", error("INTERNAL"))],
    }


def as_ours(frame: dict[str, Any]) -> dict[str, Any]:
    """WS-Kit's answer with our documented differences applied."""
    out = json.loads(json.dumps(frame))
    if out["type"] == "__heartbeat_ack":
        out["meta"]["ts"] = ANY_INT
    if out["type"] in ("RPC_ERROR", "ERROR"):
        if "correlationId" not in out.get("meta", {}):
            out["type"] = "ERROR"
        payload = out["payload"]
        code = payload["code"]
        if "retryable" not in payload and code in set(ErrorCode):
            payload["retryable"] = CATALOG[ErrorCode(code)].retryable
    return out


def _expected(record: dict[str, Any]) -> Any:
    if record["opcode"] == "close":
        return Closed(record["closeCode"], record["closeReason"])
    return as_ours(json.loads(record["raw"]))


def replay_steps() -> list[tuple[dict[str, Any], list[tuple[str, Any]]]]:
    """Each client->server frame of A, B and raw with the answers expected from us, in order."""
    records = [r for r in load_trace() if r["connection"] in REPLAYED and r["kind"] == "frame"]
    ours = _ours()
    steps: list[tuple[dict[str, Any], list[tuple[str, Any]]]] = []
    for record in records:
        if record["direction"] == "c2s":
            if record["opcode"] == "close":
                break  # the closing handshakes are checked by their own tests
            steps.append((record, []))
        elif steps:
            steps[-1][1].append((record["connection"], _expected(record)))
    return [(record, ours.get(record["seq"], answers)) for record, answers in steps]


def _path_of(connection: str) -> str:
    request = next(r for r in load_trace() if r["connection"] == connection and r["kind"] == "http")
    return str(request["raw"].split(" ")[1])


async def _replay_connect(socket_wire: Wire, *labels: str) -> dict[str, Peer]:
    endpoint = await socket_wire.serve(trace_router(), authenticate=authenticate)
    return {label: await endpoint.connect(query=_path_of(label).lstrip("/")) for label in labels}


# -- tests ----------------------------------------------------------------------------------


def test_replay_covers_the_capture() -> None:
    """The replay sends every client frame of A, B and raw up to the server's close, each with an expectation."""
    steps = replay_steps()
    assert len(steps) == 58
    assert all(step["direction"] == "c2s" for step, _ in steps)
    assert steps[-1][1] == [("raw", Closed(4000, "server says bye"))]


async def test_replay_answers_match_wskit_or_protocol(socket_wire: Wire) -> None:
    """Replaying the capture's client frames gets WS-Kit's answers, or PROTOCOL.md's where they differ."""
    peers = await _replay_connect(socket_wire, *REPLAYED)
    mismatches: list[str] = []
    for record, expected in replay_steps():
        peer = peers[record["connection"]]
        if record["opcode"] == "binary":
            await peer.send_bytes(bytes.fromhex(record["rawHex"]))
        else:
            await peer.send_text(record["raw"])
        for label, want in expected:
            frame = await peers[label].recv_frame()
            got = frame if isinstance(frame, Closed) else frame.json()
            if got != want:
                mismatches.append(f"seq {record['seq']} {record['raw']!r} -> {label}: got {got!r}, want {want!r}")
    for label in ("A", "B"):
        await assert_usable(peers[label])
    assert mismatches == []


async def test_replay_answers_are_text_frames(socket_wire: Wire) -> None:
    """Answers to a binary frame come back as text frames, as in the capture."""
    peers = await _replay_connect(socket_wire, "raw")
    record = next(r for r in load_trace() if r.get("opcode") == "binary" and r["direction"] == "c2s")
    await peers["raw"].send_bytes(bytes.fromhex(record["rawHex"]))
    frame = await peers["raw"].recv_frame()
    assert isinstance(frame, Frame)
    assert frame.text
    assert frame.json() == {"type": "PONG", "meta": {}, "payload": {"n": 7}}


async def test_replay_upgrade_carries_client_id(socket_wire: Wire) -> None:
    """Like WS-Kit's 101, ours carries x-client-id with a UUID4."""
    peer = (await _replay_connect(socket_wire, "A"))["A"]
    assert isinstance(peer, SocketPeer)
    assert peer.client_id_header is not None
    assert uuid.UUID(peer.client_id_header).version == 4


async def test_replay_reject_is_http_401(socket_wire: Wire) -> None:
    """The capture's "reject" upgrade is refused with HTTP 401 and the 12-byte body "Unauthorized"."""
    endpoint = await socket_wire.serve(trace_router(), authenticate=authenticate)
    assert endpoint.server is not None
    status, headers, body = await http_exchange(endpoint.server.port, _path_of("reject"), upgrade=True)
    assert (status, body, headers.get("content-length")) == (401, b"Unauthorized", "12")


async def test_replay_kick_closes_4401(socket_wire: Wire) -> None:
    """The capture's "kick" connection is upgraded, then closed by on_open with 4401 "kicked by onOpen"."""
    peer = (await _replay_connect(socket_wire, "kick"))["kick"]
    closed = await wait_closed(peer)
    assert (closed.code, closed.reason) == (4401, "kicked by onOpen")


async def test_replay_client_close_is_echoed(socket_wire: Wire) -> None:
    """A client closing with 1000 or 4001 gets the same code and reason back, as WS-Kit answers."""
    peers = await _replay_connect(socket_wire, "A", "B")
    closes = [r for r in load_trace() if r["connection"] in ("A", "B") and r.get("opcode") == "close"]
    echoed: dict[str, tuple[int, str]] = {}
    wanted: dict[str, tuple[int, str]] = {}
    for record in closes:
        label = record["connection"]
        if record["direction"] == "c2s":
            peer = peers[label]
            assert isinstance(peer, SocketPeer)
            await peer.close(record["closeCode"], record["closeReason"])
            rcvd = peer.ws.protocol.close_rcvd
            echoed[label] = (rcvd.code, rcvd.reason) if rcvd is not None else (1006, "")
        else:
            wanted[label] = (record["closeCode"], record["closeReason"])
    assert echoed == wanted
