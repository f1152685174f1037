"""The AsyncAPI document says what the server does: real frames of the chat demo match the
schemas of their messages, RPCs are request/reply operations with the correlation id located,
topics, servers and security are described, and the output is deterministic."""

from __future__ import annotations

import json
from typing import Any

import pytest
from examples.chat.app import ChatLimits, create_router
from tests.export.apps import full_router
from tests.export.support import frame_validator

from wskit import Router
from wskit.config import Settings
from wskit.errors import UsageError
from wskit.export.asyncapi import CORRELATION_ID_LOCATION, asyncapi_document
from wskit.testing import TestClient


def _document(router: Router[Any], **options: Any) -> dict[str, Any]:
    return asyncapi_document(router, settings=options.pop("settings", Settings()), **options)


def _matches(document: dict[str, Any], raw: bytes | str) -> bool:
    frame = json.loads(raw)
    return frame_validator(document, frame["type"]).is_valid(frame)


async def test_chat_frames_match_their_message_schemas() -> None:
    """Every frame a chat session exchanges, both ways (events, publications with history
    positions, RPC replies, heartbeat, ERROR and RPC_ERROR), is valid against its message."""
    router = create_router(ChatLimits(recoverable=True))
    document = _document(router)
    sent = [
        '{"type":"JOIN","meta":{"timestamp":1},"payload":{"room":"lobby","name":"ada"}}',
        '{"type":"SAY","payload":{"room":"lobby","text":"hi"}}',
        '{"type":"HISTORY","meta":{"correlationId":"h1"},"payload":{"room":"lobby","limit":5}}',
        '{"type":"WHO","meta":{"correlationId":"w1"},"payload":{"room":"nowhere"}}',
        '{"type":"SAY","payload":{"room":"other","text":"hi"}}',
        '{"type":"__heartbeat"}',
        '{"type":"$ws:subscribe","meta":{"correlationId":"s1"},"payload":{"topic":"room:lobby"}}',
    ]
    async with TestClient(router) as client:
        for frame in sent:
            await client.send_raw(frame)
        # WELCOME; POSITION and JOINED (JOIN); ROOM_MSG; HISTORY_RESULT; RPC_ERROR (WHO);
        # ERROR (SAY elsewhere); __heartbeat_ack; RPC_ERROR ($ws:subscribe)
        received = [(await client.receive()).raw for _ in range(9)]
        assert await client.receive_pending() is None
    types = {json.loads(raw)["type"] for raw in received}
    answers = {"HISTORY_RESULT", "RPC_ERROR", "ERROR", "__heartbeat_ack"}
    assert types == {"WELCOME", "POSITION", "JOINED", "ROOM_MSG", *answers}
    assert [raw for raw in [*sent, *received] if not _matches(document, raw)] == []


async def test_a_frame_the_server_refuses_fails_its_schema() -> None:
    """Unknown meta and payload keys are refused by the server and by the document alike."""
    router = create_router()
    document = _document(router)
    refused = [
        '{"type":"JOIN","meta":{"color":"red"},"payload":{"room":"lobby","name":"ada"}}',
        '{"type":"JOIN","payload":{"room":"lobby","name":"ada","admin":true}}',
        '{"type":"JOIN","payload":{"room":"Lobby!","name":"ada"}}',
    ]
    async with TestClient(router) as client:
        await client.receive()  # WELCOME
        for frame in refused:
            assert not _matches(document, frame)
            await client.send_raw(frame)
            answer = await client.receive()
            assert (answer.type, answer.payload["code"]) == ("ERROR", "INVALID_ARGUMENT")


def test_an_rpc_is_a_request_reply_operation_with_the_correlation_id_located() -> None:
    """receive_STATS replies STATS_RESULT or RPC_ERROR on the same channel; both messages and
    the request name the correlation id, found in meta."""
    document = _document(full_router())
    operation = document["operations"]["receive_STATS"]
    assert operation["action"] == "receive"
    assert operation["reply"]["messages"] == [
        {"$ref": "#/channels/websocket/messages/STATS_RESULT"},
        {"$ref": "#/channels/websocket/messages/RPC_ERROR"},
    ]
    messages = document["components"]["messages"]
    for key in ("STATS", "STATS_RESULT", "RPC_ERROR", "CLEAR", "CLEARED"):
        assert messages[key]["correlationId"] == {"$ref": "#/components/correlationIds/correlationId"}
    assert document["components"]["correlationIds"]["correlationId"]["location"] == CORRELATION_ID_LOCATION
    assert messages["STATS"]["payload"]["required"] == ["type", "meta", "payload"]


def test_operations_cover_both_directions_and_the_framework() -> None:
    """Routed types are received, emitted ones sent (a type may be both); the framework's frames
    are there, answers only inside their request's reply."""
    document = _document(full_router())
    assert sorted(document["operations"]) == [
        "receive_CLEAR",
        "receive_NOTE",
        "receive_PING",
        "receive_STATS",
        "receive_board_drawn_v1",
        "receive_heartbeat",
        "receive_ws_rpc-cancel",
        "receive_ws_subscribe",
        "receive_ws_unsubscribe",
        "send_ERROR",
        "send_NOTE",
        "send_RPC_ERROR",
        "send_SERVER_SHUTDOWN",
        "send_TICK",
        "send_board_drawn_v1",
        "send_ws_presence",
        "send_ws_rpc-progress",
    ]
    assert document["operations"]["receive_heartbeat"]["reply"]["messages"] == [
        {"$ref": "#/channels/websocket/messages/heartbeat_ack"}
    ]
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert {"$ws:subscribed", "$ws:unsubscribed", "__heartbeat_ack", "CLEARED", "STATS_RESULT"} <= names


def test_progress_cancel_and_presence_only_when_used() -> None:
    """A router without RPCs or presence does not list their frames."""
    router: Router[Any] = Router()
    names = {m["name"] for m in _document(router)["components"]["messages"].values()}
    assert not names & {"$ws:rpc-progress", "$ws:rpc-cancel", "$ws:presence"}
    assert {"ERROR", "RPC_ERROR", "SERVER_SHUTDOWN", "__heartbeat", "$ws:subscribe"} <= names


def test_declared_meta_keys_are_accepted_inbound_and_others_refused() -> None:
    """board:drawn/v1 declares meta.replay: a client may send it, and nothing else unknown."""
    document = _document(full_router())
    check = frame_validator(document, "board:drawn/v1")
    drawing = {"board": "b", "points": [{"x": 1, "y": 2}], "brush": {"kind": "pen", "width": 2}}
    frame = {"type": "board:drawn/v1", "payload": drawing}
    assert check.is_valid({**frame, "meta": {"replay": True, "timestamp": 5}})
    assert check.is_valid({**frame, "meta": {"topic": "board:b", "offset": 3, "epoch": "e"}})  # a delivery
    assert not check.is_valid({**frame, "meta": {"replay": "yes"}})
    assert not check.is_valid({**frame, "payload": {**frame["payload"], "points": [{"x": 1, "y": 2, "z": 3}]}})


def test_topic_patterns_are_described() -> None:
    """History, client subscriptions, presence and emitted topics, in the channel and on messages."""
    document = _document(full_router())
    channel = document["channels"]["websocket"]
    assert channel["x-wskit-topics"] == {
        "namePattern": "^[A-Za-z0-9:_./-]{1,128}$",
        "history": [{"pattern": "board:*", "maxLen": 50, "ttlS": 60}],
        "clientSubscribe": ["board:*", "ticks"],
        "presence": ["board:*"],
        "published": {"TICK": ["ticks", "ticks:*"], "board:drawn/v1": ["board:*"]},
    }
    assert "`board:*` keep history" in channel["description"]
    assert document["components"]["messages"]["TICK"]["x-wskit-topics"] == ["ticks", "ticks:*"]


def test_servers_and_path_come_from_the_settings() -> None:
    """HOST, PORT, WS_PATH and TLS decide the default server."""
    settings = Settings(host="chat.local", port=8443, path="/ws", tls_cert_file="c.pem", tls_key_file="k.pem")
    document = _document(Router(), settings=settings)
    assert document["servers"] == {"default": {"host": "chat.local:8443", "protocol": "wss"}}
    assert document["channels"]["websocket"]["address"] == "/ws"


def test_servers_given_as_urls() -> None:
    """One URL, or names to URLs; a path in the URL is the server's pathname."""
    assert _document(Router(), servers="ws://localhost:9000")["servers"] == {
        "default": {"host": "localhost:9000", "protocol": "ws"}
    }
    given = {"prod": "wss://chat.example.com/api", "dev": "ws://127.0.0.1:8000"}
    servers = _document(Router(), servers=given)["servers"]
    assert list(servers) == ["dev", "prod"]
    assert servers["prod"] == {"host": "chat.example.com", "protocol": "wss", "pathname": "/api"}


@pytest.mark.parametrize("url", ["http://example.com", "wss://", "example.com"])
def test_a_server_url_that_is_not_websocket_is_refused(url: str) -> None:
    """A clear error, not a document the parser rejects later."""
    with pytest.raises(UsageError, match="not a ws:// or wss:// URL"):
        _document(Router(), servers=url)


def test_security_schemes_when_jwt_is_configured() -> None:
    """JWT_SECRET (or auth=True): bearer header, access_token query and cookie, on every server."""
    document = _document(Router(), settings=Settings(jwt_secret="s" * 32))
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerHeader"] == {**schemes["bearerHeader"], "type": "http", "scheme": "bearer"}
    assert schemes["accessTokenQuery"] == {**schemes["accessTokenQuery"], "type": "httpApiKey", "in": "query"}
    assert len(document["servers"]["default"]["security"]) == 3
    plain = _document(Router(), settings=Settings(jwt_secret="s" * 32), auth=False)
    assert "securitySchemes" not in plain["components"] and "security" not in plain["servers"]["default"]


def test_the_document_is_deterministic() -> None:
    """Two exports of equal routers are equal as written, keys in a stable order."""
    first = json.dumps(_document(full_router()))
    assert first == json.dumps(_document(full_router()))
    document = json.loads(first)
    for section in (document["operations"], document["components"]["messages"], document["components"]["schemas"]):
        assert list(section) == sorted(section)


def test_a_model_named_like_a_framework_component_is_refused() -> None:
    """Component names starting with 'wskit.' belong to the framework."""
    import msgspec

    from wskit import message

    clashing = msgspec.defstruct("wskit.ErrorPayload", [("a", int)])
    router: Router[Any] = Router(validator="msgspec")
    router.emits(message("X", clashing))
    with pytest.raises(UsageError, match="clash with the framework"):
        _document(router)
