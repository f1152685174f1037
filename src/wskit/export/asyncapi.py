"""The AsyncAPI 3.0 document of a router: what ``wskit asyncapi MODULE:ROUTER`` prints.

One channel (the WebSocket path) carries every message. Operations are written from the
server's side: ``receive`` for what clients send, ``send`` for what the server sends. An RPC is
a ``receive`` operation with a ``reply`` (its response, or ``RPC_ERROR``).

A frame is one JSON object ``{"type", "meta", "payload"}`` with no transport headers (a
WebSocket message has none), so each message's AsyncAPI ``payload`` is the whole envelope, and
the correlation id of requests and answers is located in it:
``$message.payload#/meta/correlationId``. Modelling ``meta`` as AsyncAPI headers would promise
headers no WebSocket client can set or read.

Topic patterns (history, client subscriptions, presence, and the topics ``router.emits``
names) are in the channel's description and in ``x-wskit-topics`` extensions. The output is
deterministic (maps sorted by key, lists in a fixed order), so two exports can be diffed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from wskit.errors import UsageError
from wskit.export.frames import (
    SCHEMA_PREFIX,
    SCHEMAS,
    Frame,
    envelope,
    framework_frames,
    inbound_meta,
    outbound_meta,
)
from wskit.protocol import RPC_ERROR_TYPE, is_reserved_type
from wskit.schema.jsonschema import JsonSchemas, payload_schemas

if TYPE_CHECKING:
    from wskit.config import Settings
    from wskit.router import Route, Router

__all__ = ["ASYNCAPI_VERSION", "CORRELATION_ID_LOCATION", "asyncapi_document"]

ASYNCAPI_VERSION: Final = "3.0.0"
#: Where a request's correlation id is, in the envelope AsyncAPI sees as the message payload.
CORRELATION_ID_LOCATION: Final = "$message.payload#/meta/correlationId"
_CHANNEL: Final = "websocket"
#: component keys AsyncAPI accepts
_KEY_CHARS: Final = re.compile(r"[^A-Za-z0-9.\-_]")


def asyncapi_document(
    router: Router[Any],
    *,
    title: str = "wskit application",
    version: str = "0.0.0",
    description: str | None = None,
    servers: str | Mapping[str, str] | None = None,
    path: str | None = None,
    auth: bool | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``router`` as a JSON-able dict.

    ``servers``: a URL (``"wss://chat.example.com"``) or name -> URL; default: one server at
    ``HOST``:``PORT``, ``wss`` when TLS is configured. ``path``: the WebSocket path (default
    ``WS_PATH``, else ``/``). ``auth``: document the bearer JWT security schemes (default: when
    ``JWT_SECRET`` is set; pass True when an ``authenticate`` hook checks tokens the same way).
    ``settings``: where those defaults come from (default: the environment, as ``serve()``).

    Raises :class:`~wskit.schema.jsonschema.SchemaExportError` (a :class:`UsageError`) for a
    payload JSON Schema cannot state, :class:`UsageError` for a bad server URL.
    """
    if settings is None and (servers is None or path is None or auth is None):
        from wskit.config import load_settings

        settings = load_settings()
    path = path or (settings.path if settings is not None else None) or "/"
    auth = bool(settings is not None and settings.jwt_secret) if auth is None else auth
    schemas = payload_schemas(router)
    clash = sorted(name for name in schemas.components if name.startswith(SCHEMA_PREFIX))
    if clash:
        raise UsageError(f"model names {clash} clash with the framework's components ({SCHEMA_PREFIX}*): rename them")
    book = _Book(router, schemas)
    channel = _channel(router, path, book, auth=auth)
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": version, "description": description or _DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": _servers(servers, settings, auth=auth),
        "channels": {_CHANNEL: channel},
        "operations": dict(sorted(book.operations.items())),
        "components": {
            "schemas": dict(sorted({**schemas.components, **SCHEMAS}.items())),
            "messages": dict(sorted(book.messages.items())),
            "correlationIds": {
                "correlationId": {
                    "description": "The id a client sets on a request; every answer to it carries the same one.",
                    "location": CORRELATION_ID_LOCATION,
                }
            },
        },
    }
    if auth:
        document["components"]["securitySchemes"] = _SECURITY
    return document


_DESCRIPTION: Final = (
    "Every frame is one JSON object `{type, meta, payload}` in a text frame (wskit speaks WS-Kit's "
    "wire format). A client's `meta` may hold only `timestamp`, `correlationId`, `timeoutMs`, "
    "`traceparent`, `tracestate` and the keys its message declares; its `payload` is checked strictly "
    "(unknown keys refused). Every failure is answered: `RPC_ERROR` when the message carried a "
    "`correlationId` (with the same one), `ERROR` otherwise. Types starting with `__` or `$` belong "
    "to the framework."
)

_SECURITY: Final = {
    "bearerHeader": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "`Authorization: Bearer <token>` on the upgrade request (or the `bearer.<token>` subprotocol).",
    },
    "accessTokenQuery": {
        "type": "httpApiKey",
        "name": "access_token",
        "in": "query",
        "description": "The WS-Kit client's way: `?access_token=<token>` on the WebSocket URL.",
    },
    "accessTokenCookie": {
        "type": "httpApiKey",
        "name": "access_token",
        "in": "cookie",
        "description": "An `access_token` cookie the browser sends with the upgrade.",
    },
}


class _Book:
    """The document's messages and operations, under component keys AsyncAPI accepts."""

    def __init__(self, router: Router[Any], schemas: JsonSchemas) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, str] = {}
        self._used: set[str] = set()
        rpcs = [route for route in router.routes.values() if route.rpc is not None]
        frames = framework_frames(
            rpcs=bool(rpcs),
            presence=bool(router.presence_patterns),
            topic_pattern=router.topic_policy.pattern.pattern,
        )
        for type_name in sorted(schemas.payloads):  # the application's first: they keep their names
            inbound = router.routes.get(type_name)
            outbound = router.outbound.get(type_name)
            self._add(type_name, _app_message(type_name, schemas, inbound, outbound is not None, router))
        for frame in frames:
            self._add(frame.type, _frame_message(frame))
        # answers appear in their request's reply; RPC_ERROR also answers events with a correlationId
        answers = {reply for frame in frames for reply in frame.replies} - {RPC_ERROR_TYPE}
        for frame in frames:
            if frame.type not in answers:
                self._operation(frame.type, inbound=frame.inbound, replies=frame.replies)
        for type_name in sorted(schemas.payloads):
            route = router.routes.get(type_name)
            if route is not None:
                replies = (route.rpc.response.type, RPC_ERROR_TYPE) if route.rpc is not None else ()
                self._operation(type_name, inbound=True, replies=replies)
            if type_name in router.emitted:
                self._operation(type_name, inbound=False, replies=())

    def key(self, type_name: str) -> str:
        """The component key of message ``type_name``."""
        return self._keys[type_name]

    def _add(self, type_name: str, message: dict[str, Any]) -> None:
        # "$ws:subscribe" -> "ws_subscribe", "__heartbeat" -> "heartbeat"; "a:b" -> "a_b"
        base = _KEY_CHARS.sub("_", type_name.lstrip("$_") if is_reserved_type(type_name) else type_name)
        key, n = base, 2
        while key in self._used:  # "a:b" and "a_b" are two types
            key, n = f"{base}_{n}", n + 1
        self._used.add(key)
        self._keys[type_name] = key
        self.messages[key] = message

    def _operation(self, type_name: str, *, inbound: bool, replies: tuple[str, ...]) -> None:
        key = self.key(type_name)
        operation: dict[str, Any] = {
            "action": "receive" if inbound else "send",
            "channel": {"$ref": f"#/channels/{_CHANNEL}"},
            "messages": [self._channel_ref(type_name)],
            "summary": f"{'Client' if inbound else 'Server'} sends {type_name}.",
        }
        if replies:
            operation["reply"] = {
                "channel": {"$ref": f"#/channels/{_CHANNEL}"},
                "messages": [self._channel_ref(reply) for reply in replies],
            }
            operation["summary"] = f"Client sends {type_name}; the server answers {' or '.join(replies)}."
        self.operations[f"{operation['action']}_{key}"] = operation

    def _channel_ref(self, type_name: str) -> dict[str, str]:
        return {"$ref": f"#/channels/{_CHANNEL}/messages/{self.key(type_name)}"}


def _frame_message(frame: Frame) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": frame.type,
        "summary": frame.summary,
        "payload": frame.envelope,
        "x-wskit-direction": "client-to-server" if frame.inbound else "server-to-client",
    }
    if frame.correlated:
        message["correlationId"] = {"$ref": "#/components/correlationIds/correlationId"}
    return message


def _app_message(
    type_name: str, schemas: JsonSchemas, route: Route | None, outbound: bool, router: Router[Any]
) -> dict[str, Any]:
    """An application message: its envelope in the direction(s) it travels."""
    payload = schemas.payloads.get(type_name)
    extra = schemas.meta.get(type_name, {})
    responded = {r.rpc.response.type: r.type for r in router.routes.values() if r.rpc is not None}
    request = route is not None and route.rpc is not None
    reply = type_name in responded
    metas: list[dict[str, Any]] = []
    if route is not None:
        metas.append(inbound_meta(extra, correlated=request))
    if outbound:
        metas.append(outbound_meta(extra, reply=reply))
    meta = metas[0] if len(metas) == 1 else {"anyOf": metas}
    if payload is None:
        # a client may send {} for a message without payload; the server sends none
        body: dict[str, Any] | None = {"type": "object", "maxProperties": 0} if route is not None else None
    else:
        body = payload
    message: dict[str, Any] = {
        "name": type_name,
        "summary": _summary(type_name, route, outbound, responded),
        "payload": envelope(
            type_name, meta=meta, payload=body, meta_required=request or reply, payload_required=payload is not None
        ),
        "x-wskit-direction": _direction(route is not None, outbound),
    }
    if request or reply:
        message["correlationId"] = {"$ref": "#/components/correlationIds/correlationId"}
    topics = router.emitted_topics.get(type_name)
    if topics:
        message["x-wskit-topics"] = list(topics)
    return message


def _direction(inbound: bool, outbound: bool) -> str:
    if inbound and outbound:
        return "both"
    return "client-to-server" if inbound else "server-to-client"


def _summary(type_name: str, route: Route | None, outbound: bool, responded: Mapping[str, str]) -> str:
    if route is not None and route.rpc is not None:
        return f"Request, answered by {route.rpc.response.type} (or RPC_ERROR)."
    if type_name in responded:
        return f"The reply to {responded[type_name]}."
    if route is not None and outbound:
        return "Sent by clients and by the server."
    return "Sent by clients." if route is not None else "Sent by the server."


def _channel(router: Router[Any], path: str, book: _Book, *, auth: bool) -> dict[str, Any]:
    topics: dict[str, Any] = {"namePattern": router.topic_policy.pattern.pattern}
    if router.history:
        topics["history"] = [{"pattern": h.pattern, "maxLen": h.max_len, "ttlS": h.ttl_s} for h in router.history]
    if router.subscribe_patterns:
        topics["clientSubscribe"] = list(router.subscribe_patterns)
    if router.presence_patterns:
        topics["presence"] = list(router.presence_patterns)
    emitted = {name: list(patterns) for name, patterns in sorted(router.emitted_topics.items()) if patterns}
    if emitted:
        topics["published"] = emitted
    channel: dict[str, Any] = {
        "address": path,
        "description": _topics_text(topics),
        "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in sorted(book.messages)},
        "x-wskit-topics": topics,
    }
    if auth:
        channel["bindings"] = {
            "ws": {
                "method": "GET",
                "query": {"type": "object", "properties": {"access_token": {"type": "string"}}},
                "bindingVersion": "0.1.0",
            }
        }
    return channel


def _topics_text(topics: Mapping[str, Any]) -> str:
    lines = [f"The WebSocket endpoint. Topic names match `{topics['namePattern']}`."]
    for policy in topics.get("history", ()):
        lines.append(
            f"Topics `{policy['pattern']}` keep history ({policy['maxLen']} messages, {policy['ttlS']:g} s): "
            "deliveries carry meta.offset and meta.epoch, and a client can resume from its last position."
        )
    if topics.get("clientSubscribe"):
        shown = ", ".join(f"`{p}`" for p in topics["clientSubscribe"])
        lines.append(f"Clients may subscribe themselves ($ws:subscribe) to topics {shown}.")
    else:
        lines.append("Clients may not subscribe themselves: every $ws:subscribe is refused PERMISSION_DENIED.")
    if topics.get("presence"):
        lines.append(f"Joins and leaves are announced ($ws:presence) on {', '.join(topics['presence'])}.")
    for name, patterns in topics.get("published", {}).items():
        lines.append(f"{name} is published on {', '.join(f'`{p}`' for p in patterns)}.")
    return "\n\n".join(lines)


def _servers(given: str | Mapping[str, str] | None, settings: Settings | None, *, auth: bool) -> dict[str, Any]:
    if given is None:
        assert settings is not None  # resolved by the caller whenever servers are not given
        scheme = "wss" if settings.tls_cert_file else "ws"
        host = settings.host if not settings.port else f"{settings.host}:{settings.port}"
        urls = {"default": f"{scheme}://{host}"}
    elif isinstance(given, str):
        urls = {"default": given}
    else:
        urls = dict(given)
    out: dict[str, Any] = {}
    for name, url in sorted(urls.items()):
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise UsageError(f"server {name!r}: {url!r} is not a ws:// or wss:// URL with a host")
        if _KEY_CHARS.search(name):
            raise UsageError(f"server name {name!r}: use letters, digits, '.', '-' and '_'")
        server: dict[str, Any] = {"host": parts.netloc, "protocol": parts.scheme}
        if parts.path not in ("", "/"):
            server["pathname"] = parts.path
        if auth:
            server["security"] = [{"$ref": f"#/components/securitySchemes/{key}"} for key in _SECURITY]
        out[name] = server
    return out
