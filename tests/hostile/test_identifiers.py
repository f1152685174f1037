"""Client-supplied identifiers are bounded: a huge correlationId, type name or topic name is
refused or clipped, never stored per RPC nor repeated back at full size."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel
from tests.production.conftest import build_router, request, ws_client

from wskit import Context, Router, Server, rpc
from wskit.schema.validator import MAX_CORRELATION_ID_LENGTH

BACKENDS = ["pydantic", "msgspec"]


class StructText(msgspec.Struct):
    text: str


def _echo_router(validator: str) -> Router[Any]:
    """ECHO -> ECHO_OK with a payload model of the backend's kind."""
    if validator == "pydantic":
        return build_router()
    echo = rpc("ECHO", StructText, "ECHO_OK", StructText)
    router: Router[Any] = Router(validator="msgspec")

    @router.rpc(echo)
    async def echoed(ctx: Context[StructText]) -> None:
        await ctx.reply(ctx.payload)

    return router


async def _answer(ws: Any) -> tuple[int, dict[str, Any]]:
    async with asyncio.timeout(5):
        raw = await ws.recv()
    return len(raw), json.loads(raw)


@pytest.mark.parametrize("validator", BACKENDS)
async def test_a_huge_correlation_id_is_refused_without_echo(make_server: Any, validator: str) -> None:
    """A 1 MiB correlationId on an RPC: ERROR INVALID_ARGUMENT naming meta.correlationId, a small
    answer without the id, and the handler never runs (the id is never kept nor repeated)."""
    server: Server = await make_server(router=_echo_router(validator))
    async with ws_client(server.url, max_size=None) as ws:
        huge = "c" * ((1 << 20) - 200)  # as large as a frame may be
        await ws.send(json.dumps({"type": "ECHO", "meta": {"correlationId": huge}, "payload": {"text": "x"}}))
        size, answer = await _answer(ws)
        assert answer["type"] == "ERROR" and answer["meta"] == {}
        assert answer["payload"]["code"] == "INVALID_ARGUMENT"
        assert [i["path"] for i in answer["payload"]["details"]["issues"]] == [["meta", "correlationId"]]
        assert size < 1024
        # the longest id accepted still works, and is echoed
        longest = "k" * MAX_CORRELATION_ID_LENGTH
        assert (await request(ws, "ECHO", {"text": "x"}, cid=longest))["type"] == "ECHO_OK"


@pytest.mark.parametrize("validator", BACKENDS)
async def test_an_unknown_type_of_a_megabyte_is_quoted_clipped(make_server: Any, validator: str) -> None:
    """UNIMPLEMENTED for a 1 MiB type name quotes 64 characters of it, not the megabyte."""
    server: Server = await make_server(router=_echo_router(validator))
    async with ws_client(server.url, max_size=None) as ws:
        for kind in ("T" * ((1 << 20) - 20), "$" + "T" * ((1 << 20) - 20)):
            await ws.send(json.dumps({"type": kind}))
            size, answer = await _answer(ws)
            assert answer["payload"]["code"] in ("UNIMPLEMENTED", "INVALID_ARGUMENT")
            quoted = answer["payload"]["details"]["type"]
            assert len(quoted) == 64 and quoted.endswith("\u2026") and kind.startswith(quoted[:-1])
            assert size < 1024


def _topic_router() -> Router[Any]:
    class Topic(BaseModel):
        topic: str

    join = rpc("JOIN", Topic, "JOINED", Topic)
    router: Router[Any] = Router()

    @router.rpc(join)
    async def joined(ctx: Context[Topic]) -> None:
        await ctx.subscribe(ctx.payload.topic)
        await ctx.reply(ctx.payload)

    return router


async def test_a_topic_name_with_a_trailing_newline_is_refused(make_server: Any) -> None:
    """ "lobby\\n" is not a second topic beside "lobby": INVALID_ARGUMENT, and the connection
    is subscribed to nothing (the default pattern must match the whole name)."""
    server: Server = await make_server(router=_topic_router())
    async with ws_client(server.url) as ws:
        refused = await request(ws, "JOIN", {"topic": "lobby\n"}, cid="a")
        assert refused["type"] == "RPC_ERROR" and refused["payload"]["code"] == "INVALID_ARGUMENT"
        assert (await request(ws, "JOIN", {"topic": "lobby"}, cid="b"))["type"] == "JOINED"
        (conn,) = server.router.hub.connections.values()
        assert conn.topics == {"lobby"}
