"""Helpers of the protocol conformance suite: one test, every host.

Every test talks to the server through a :class:`Peer`, which speaks raw frames. The
``wire`` fixture is parametrised by transport, so each test runs over the in-memory
transport (:class:`wskit.testing.TestClient`), over real sockets to the standalone server
(``socket``: a :class:`wskit.Server` on 127.0.0.1, port 0, and a ``websockets`` client; ``picows``:
the same server with ``transport="picows"``), and
over real sockets to :func:`wskit.asgi.asgi_app` under the ASGI hosts of
:data:`ASGI_WIRES` (uvicorn with each of its WebSocket implementations, hypercorn, and a
FastAPI app that mounts wskit at ``/ws/`` beside its own route, under uvicorn). The conformance
application (:func:`build_app`) declares the handful of routes the tests need and records
what the server side saw (``on_error``, ``on_close``, cancelled handlers).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel
from tests.asgi.hosts import UVICORN_WS, running
from tests.support.serving import MOUNT, UVICORN, mounted_in_fastapi
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed

from wskit import Context, ErrorCode, Router, Server, WsKitError, message, rpc
from wskit.asgi import asgi_app
from wskit.testing import TestClient
from wskit.testing.client import ConnectionClosed as MemoryConnectionClosed

#: Longest wait for one expected frame (seconds).
WAIT = 2.0
#: A string no answer may contain: it is only in the text of exceptions handlers raise.
SECRET = "s3cret-internal-detail-7f3a"


# -- matchers ------------------------------------------------------------------------------


class _AnyStr:
    """Equal to any non-empty string (for human-readable messages the protocol leaves free)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any non-empty str>"


class _AnyInt:
    """Equal to any integer (``meta.ts`` of heartbeat acks)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and not isinstance(other, bool)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<any int>"


ANY_STR: Any = _AnyStr()
ANY_INT: Any = _AnyInt()


def error(
    code: str,
    *,
    cid: str | None = None,
    message: Any = ANY_STR,
    details: Mapping[str, Any] | None = None,
    retryable: bool | None = False,
    **extra: Any,
) -> dict[str, Any]:
    """The expected ERROR (no ``cid``) or RPC_ERROR frame; ``retryable=None`` leaves the key out."""
    payload: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        payload["details"] = dict(details)
    payload.update(extra)
    if retryable is not None:
        payload["retryable"] = retryable
    if cid is None:
        return {"type": "ERROR", "meta": {}, "payload": payload}
    return {"type": "RPC_ERROR", "meta": {"correlationId": cid}, "payload": payload}


def invalid(*paths: list[Any], cid: str | None = None) -> dict[str, Any]:
    """The expected INVALID_ARGUMENT answer with one ``details.issues`` entry per path."""
    issues = [{"path": path, "message": ANY_STR} for path in paths]
    return error("INVALID_ARGUMENT", cid=cid, details={"issues": issues})


# -- peers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Closed:
    """The connection was closed by the server with ``code`` and ``reason``."""

    code: int
    reason: str


@dataclass(frozen=True)
class Frame:
    """One frame from the server: its data and whether it came as a text frame."""

    data: str | bytes
    text: bool = True

    def json(self) -> Any:
        return json.loads(self.data)


class PeerClosed(Exception):
    """``recv`` found the connection closed instead of a frame."""

    def __init__(self, closed: Closed) -> None:
        super().__init__(f"closed: {closed.code} {closed.reason!r}")
        self.closed = closed


class Peer(Protocol):
    """A client speaking raw frames, whatever the transport."""

    transport: str

    async def send_text(self, text: str) -> None: ...
    async def send_bytes(self, data: bytes) -> None: ...
    async def recv_frame(self, timeout: float = WAIT) -> Frame | Closed: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class MemoryPeer:
    """A :class:`TestClient` seen as a raw-frame peer (text and binary frames look the same)."""

    transport = "memory"

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def send_text(self, text: str) -> None:
        await self.client.send_raw(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.client.send_raw(data)

    async def recv_frame(self, timeout: float = WAIT) -> Frame | Closed:
        try:
            msg = await self.client.receive(timeout=timeout)
        except MemoryConnectionClosed as exc:
            return Closed(exc.code, exc.reason)
        return Frame(msg.raw.decode())

    async def close(self, code: int = 1000, reason: str = "") -> None:
        async with asyncio.timeout(WAIT):
            await self.client.close(code, reason)


class SocketPeer:
    """A ``websockets`` client connection to a real server."""

    transport = "socket"

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @property
    def client_id_header(self) -> str | None:
        assert self.ws.response is not None
        return self.ws.response.headers.get("x-client-id")

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send(data)

    async def recv_frame(self, timeout: float = WAIT) -> Frame | Closed:
        try:
            async with asyncio.timeout(timeout):
                data = await self.ws.recv()
        except WsConnectionClosed as exc:
            rcvd = exc.rcvd
            return Closed(rcvd.code, rcvd.reason) if rcvd is not None else Closed(1006, "")
        return Frame(data, text=isinstance(data, str))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        async with asyncio.timeout(WAIT):
            await self.ws.close(code, reason)


class StarletteTestClientPeer:
    """A session of Starlette's own ``TestClient`` (``client.websocket_connect``), the way a
    FastAPI or Starlette user tests their app: no socket, the ASGI messages themselves, the
    app running in the test client's thread and event loop. Its blocking calls run in a
    worker thread here, so this test's loop goes on meanwhile."""

    transport = "starlette-testclient"

    def __init__(self, session: Any) -> None:
        self.session = session
        self.closed: Closed | None = None

    async def send_text(self, text: str) -> None:
        await asyncio.to_thread(self.session.send_text, text)

    async def send_bytes(self, data: bytes) -> None:
        await asyncio.to_thread(self.session.send_bytes, data)

    async def recv_frame(self, timeout: float = WAIT) -> Frame | Closed:
        if self.closed is not None:
            return self.closed
        session = self.session

        async def next_message() -> Any:
            # the session's own receive() has no timeout: its queue, read with one
            import anyio

            with anyio.fail_after(timeout):
                return await session._send_rx.receive()

        try:
            message = await asyncio.to_thread(session.portal.call, next_message)
        except TimeoutError:
            raise TimeoutError(f"no frame within {timeout} s") from None
        if message["type"] == "websocket.close":
            self.closed = Closed(message.get("code", 1000), message.get("reason") or "")
            return self.closed
        text = message.get("text")
        return Frame(text, text=True) if text is not None else Frame(message["bytes"], text=False)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed is None:
            self.closed = Closed(code, reason)
            await asyncio.to_thread(self.session.close, code, reason)


async def send_json(peer: Peer, obj: Any) -> None:
    """Send ``obj`` as one text frame of compact JSON."""
    await peer.send_text(json.dumps(obj, separators=(",", ":")))


async def recv(peer: Peer, timeout: float = WAIT) -> dict[str, Any]:
    """The next frame, parsed (key order kept). Raises :class:`PeerClosed` when closed instead."""
    frame = await peer.recv_frame(timeout)
    if isinstance(frame, Closed):
        raise PeerClosed(frame)
    obj = frame.json()
    assert isinstance(obj, dict), f"frame is not a JSON object: {frame.data!r}"
    return obj


async def wait_closed(peer: Peer, timeout: float = WAIT) -> Closed:
    """The close the server sent, skipping nothing: a data frame first fails the test."""
    frame = await peer.recv_frame(timeout)
    assert isinstance(frame, Closed), f"expected the connection to close, got frame {frame!r}"
    return frame


_probe_ids = itertools.count(1)


async def assert_usable(peer: Peer) -> None:
    """The connection answers an RPC, and that answer is the very next frame (nothing stray before it)."""
    cid = f"probe-{next(_probe_ids)}"
    text = f"alive {cid}"
    await send_json(peer, {"type": "ECHO_RPC", "meta": {"correlationId": cid}, "payload": {"text": text}})
    got = await recv(peer)
    assert got == {"type": "ECHO_OK", "meta": {"correlationId": cid}, "payload": {"text": text}}


async def http_exchange(
    port: int, path: str, *, upgrade: bool, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 request to 127.0.0.1; ``(status, headers, body)`` of the answer."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if upgrade:
        key = base64.b64encode(os.urandom(16)).decode()
        lines += ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {key}"]
    else:
        lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    async with asyncio.timeout(WAIT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status_line, *header_lines = head.strip().split("\r\n")
            got = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
            length = int(got.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
        finally:
            writer.close()
            await writer.wait_closed()
    return int(status_line.split(" ")[1]), got, body


# -- the conformance application ---------------------------------------------------------


class N(BaseModel):
    n: int


class Text(BaseModel):
    text: str


class Empty(BaseModel):
    pass


class Room(BaseModel):
    room: str


class Say(BaseModel):
    room: str
    text: str


class Steps(BaseModel):
    steps: int


class ItemId(BaseModel):
    id: str


class UserName(BaseModel):
    user: str


class ClientId(BaseModel):
    clientId: str


class ErrSpec(BaseModel):
    """What error a handler should produce (``mode``: via ``ctx.error`` or by raising)."""

    code: str
    mode: Literal["ctx", "raise"] = "ctx"
    message: str | None = None
    details: dict[str, Any] | None = None
    retryAfterMs: int | None = None
    retryable: bool | None = None


Ping = message("PING", N)
Pong = message("PONG", N)
TaggedPing = message("TAGGED_PING", N, meta={"tag": str})
Nudge = message("NUDGE")
Nudged = message("NUDGED")
EventErr = message("EVENT_ERR", ErrSpec)
Boom = message("BOOM", Empty)
BadOut = message("BAD_OUT", Empty)
Secret = message("SECRET", Empty)
SecretOk = message("SECRET_OK", UserName)
Join = message("JOIN", Room)
Joined = message("JOINED", Room)
Leave = message("LEAVE", Room)
Left = message("LEFT", Room)
SayMsg = message("SAY", Say)
SayOthers = message("SAY_OTHERS", Say)
RoomMsg = message("ROOM_MSG", Say)
Bye = message("BYE", Empty)

EchoRpc = rpc("ECHO_RPC", Text, "ECHO_OK", Text)
FindRpc = rpc("FIND_RPC", ItemId, "FOUND", ItemId)
ErrRpc = rpc("ERR_RPC", ErrSpec, "ERR_OK", Empty)
BoomRpc = rpc("BOOM_RPC", Empty, "BOOM_OK", Empty)
BadReplyRpc = rpc("BAD_REPLY_RPC", Empty, "BAD_REPLY_OK", Text)
DoubleRpc = rpc("DOUBLE_RPC", Empty, "DOUBLE_OK", Text)
SlowRpc = rpc("SLOW_RPC", Steps, "SLOW_DONE", Steps)
NoReplyRpc = rpc("NOREPLY_RPC", Empty, "NOREPLY_OK", Empty)
HangRpc = rpc("HANG_RPC", Empty, "HANG_OK", Empty)
WhoamiRpc = rpc("WHOAMI_RPC", Empty, "WHOAMI_OK", ClientId)


@dataclass
class App:
    """The conformance router and what its server side observed."""

    router: Router[Any]
    errors: list[BaseException] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    hang_started: asyncio.Event = field(default_factory=asyncio.Event)
    hang_cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    hang_finished_normally: bool = False
    #: the tests' event loop (set by the ``endpoint`` fixture): the Starlette TestClient wire
    #: runs the server in a thread of its own, which must wake the tests' waits through it
    loop: asyncio.AbstractEventLoop | None = None

    def wake(self, event: asyncio.Event) -> None:
        """``event.set()`` from the server's side, whichever thread and loop that is."""
        loop = self.loop
        if loop is None or _running_loop() is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def wait_closes(self, count: int) -> list[int | None]:
        """Wait (bounded) until ``on_close`` ran ``count`` times; the codes it saw."""
        async with asyncio.timeout(WAIT):
            while len(self.closes) < count:
                self.closed.clear()
                await self.closed.wait()
        return self.closes


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _answer_error(ctx: Context[ErrSpec]) -> None:
    spec = ctx.payload
    options: dict[str, Any] = {"details": spec.details, "retryable": spec.retryable}
    if "retryAfterMs" in spec.model_fields_set:
        options["retry_after_ms"] = spec.retryAfterMs
    if spec.mode == "raise":
        raise WsKitError(spec.code, spec.message, **options)
    await ctx.error(spec.code, spec.message, **options)


def build_app() -> App:
    """A fresh router with every route the conformance tests use."""
    router: Router[Any] = Router()
    app = App(router)

    async def require_login(ctx: Context[Any], call_next: Callable[[], Any]) -> None:
        if "user" not in ctx.data:
            raise WsKitError(ErrorCode.UNAUTHENTICATED, "Login required")
        await call_next()

    @router.on(Ping)
    async def ping(ctx: Context[N]) -> None:
        await ctx.send(Pong, ctx.payload)

    @router.on(TaggedPing)
    async def tagged_ping(ctx: Context[N]) -> None:
        await ctx.send(Pong, ctx.payload, meta={"tag": ctx.meta["tag"]}, inherit_correlation_id=True)

    @router.on(Nudge)
    async def nudge(ctx: Context[None]) -> None:
        await ctx.send(Nudged)

    @router.on(EventErr)
    async def event_err(ctx: Context[ErrSpec]) -> None:
        await _answer_error(ctx)

    @router.on(Boom)
    async def boom(ctx: Context[Empty]) -> None:
        raise RuntimeError(f"database password is {SECRET}")

    @router.on(BadOut)
    async def bad_out(ctx: Context[Empty]) -> None:
        await ctx.send(Pong, {"n": "not a number"})

    @router.on(Secret, middleware=[require_login])
    async def secret(ctx: Context[Empty]) -> None:
        await ctx.send(SecretOk, {"user": ctx.data["user"]})

    @router.on(Join)
    async def join(ctx: Context[Room]) -> None:
        await ctx.subscribe(ctx.payload.room)
        await ctx.send(Joined, ctx.payload)

    @router.on(Leave)
    async def leave(ctx: Context[Room]) -> None:
        await ctx.unsubscribe(ctx.payload.room)
        await ctx.send(Left, ctx.payload)

    @router.on(SayMsg)
    async def say(ctx: Context[Say]) -> None:
        await ctx.publish(ctx.payload.room, RoomMsg, ctx.payload)

    @router.on(SayOthers)
    async def say_others(ctx: Context[Say]) -> None:
        await ctx.publish(ctx.payload.room, RoomMsg, ctx.payload, exclude_self=True)

    @router.on(Bye)
    async def bye(ctx: Context[Empty]) -> None:
        await ctx.close(4000, "server says bye")

    @router.rpc(EchoRpc)
    async def echo(ctx: Context[Text]) -> None:
        await ctx.reply(ctx.payload)

    @router.rpc(FindRpc)
    async def find(ctx: Context[ItemId]) -> None:
        await ctx.error(ErrorCode.NOT_FOUND, f"No item with id {ctx.payload.id}", details={"id": ctx.payload.id})

    @router.rpc(ErrRpc)
    async def err_rpc(ctx: Context[ErrSpec]) -> None:
        await _answer_error(ctx)

    @router.rpc(BoomRpc)
    async def boom_rpc(ctx: Context[Empty]) -> None:
        raise ValueError(f"cannot parse {SECRET}")

    @router.rpc(BadReplyRpc)
    async def bad_reply(ctx: Context[Empty]) -> None:
        await ctx.reply({"wrong": 1})

    @router.rpc(DoubleRpc)
    async def double(ctx: Context[Empty]) -> None:
        await ctx.reply({"text": "first"})
        await ctx.reply({"text": "second"})
        await ctx.error(ErrorCode.INTERNAL, "after reply", retry_after_ms=200)

    @router.rpc(SlowRpc)
    async def slow(ctx: Context[Steps]) -> None:
        for step in range(1, ctx.payload.steps + 1):
            await ctx.progress({"step": step})
            await asyncio.sleep(0)
        await ctx.reply(ctx.payload)

    @router.rpc(NoReplyRpc)
    async def no_reply(ctx: Context[Empty]) -> None:
        return None

    @router.rpc(HangRpc)
    async def hang(ctx: Context[Empty]) -> None:
        app.wake(app.hang_started)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            app.wake(app.hang_cancelled)
            raise
        app.hang_finished_normally = True
        await ctx.reply({})

    @router.rpc(WhoamiRpc)
    async def whoami(ctx: Context[Empty]) -> None:
        await ctx.reply({"clientId": ctx.client_id})

    @router.on_error
    def record_error(ctx: Context[Any], exc: BaseException) -> None:
        app.errors.append(exc)

    @router.on_close
    def record_close(ctx: Context[Any]) -> None:
        app.closes.append(ctx.close_code)
        app.wake(app.closed)

    return app


# -- transports ----------------------------------------------------------------------------


class Endpoint:
    """One router being served over one transport; ``connect()`` opens a new peer."""

    def __init__(self, transport: str, router: Router[Any], stack: contextlib.AsyncExitStack, **options: Any) -> None:
        self.transport = transport
        self.router = router
        self.stack = stack
        self.options = options
        self.server: Server | None = None
        #: where peers connect (the real sockets' wires)
        self.url = ""
        #: Starlette's TestClient around the app (that wire only)
        self.test_client: Any = None

    async def start(self) -> None:
        if self.transport in SERVE_WIRES:
            self.server = await self.stack.enter_async_context(
                Server(self.router, host="127.0.0.1", port=0, transport=SERVE_WIRES[self.transport], **self.options)
            )
        elif self.transport == "starlette-testclient":
            self.test_client = await _start_test_client(self.router, self.stack, self.options)
        elif self.transport in ASGI_WIRES:
            self.url, port = await _start_asgi(self.transport, self.router, self.stack, self.options)
            if self.transport != "fastapi-mount":
                # what the socket-only tests read of a server: its port and URL
                self.server = HostAddress(port, self.url)  # type: ignore[assignment]

    async def connect(self, *, query: str = "", data: Mapping[str, Any] | None = None) -> Peer:
        """A new connected peer (``query`` for sockets, ``data`` as connection data in memory)."""
        if self.transport == "memory":
            limit = self.options.get("max_payload_bytes", 1024 * 1024)
            client = TestClient(self.router, data=data, max_payload_bytes=limit)
            await client.connect()
            memory_peer = MemoryPeer(client)
            self.stack.push_async_callback(_quiet_close, memory_peer)
            return memory_peer
        if self.transport == "starlette-testclient":
            session = self.test_client.websocket_connect("/" + query)
            await asyncio.to_thread(session.__enter__)
            test_client_peer = StarletteTestClientPeer(session)
            self.stack.push_async_callback(_leave, test_client_peer)
            return test_client_peer
        url = self.server.url if self.server is not None else self.url
        ws = await connect(url + query, open_timeout=WAIT, close_timeout=WAIT, max_size=None)
        socket_peer = SocketPeer(ws)
        self.stack.push_async_callback(_quiet_close, socket_peer)
        return socket_peer


#: The wires that are serve()'s own server, and the transport each runs (WSKIT_TRANSPORT)
SERVE_WIRES = {"socket": "aiohttp", "picows": "picows"}

#: The ASGI wires: uvicorn with each WebSocket implementation it has, hypercorn, and a FastAPI
#: app mounting wskit at ``/ws`` (uvicorn's default implementation) that adopts its lifespan.
ASGI_WIRES = [*(f"uvicorn-{ws}" for ws in UVICORN_WS), "hypercorn", "fastapi-mount"]


@dataclass(frozen=True)
class HostAddress:
    """Where an ASGI host listens, as the socket-only tests read a :class:`Server`."""

    port: int
    url: str


async def _start_asgi(
    transport: str, router: Router[Any], stack: contextlib.AsyncExitStack, options: Any
) -> tuple[str, int]:
    """Serve ``router`` by :func:`asgi_app` under the host ``transport`` names; the URL to
    connect to and the port."""
    app: Any = asgi_app(router, **options)
    path = "/"
    if transport == "fastapi-mount":
        app = mounted_in_fastapi(app)
        transport, path = UVICORN, MOUNT + "/"
    host = await stack.enter_async_context(running(app, transport))
    return host.url(path), host.port


async def _start_test_client(router: Router[Any], stack: contextlib.AsyncExitStack, options: Any) -> Any:
    """Starlette's ``TestClient`` around :func:`asgi_app`, entered (lifespan started in the
    test client's own thread); left when the test ends."""
    from starlette.testclient import TestClient as StarletteTestClient

    client = StarletteTestClient(asgi_app(router, **options))
    await asyncio.to_thread(client.__enter__)
    stack.push_async_callback(asyncio.to_thread, client.__exit__, None, None, None)
    return client


async def _leave(peer: StarletteTestClientPeer) -> None:
    """End a test client session: its close (unless sent), then wait for the app to return."""
    with contextlib.suppress(Exception):
        await peer.close()
    with contextlib.suppress(Exception):
        await asyncio.to_thread(peer.session.exit_stack.close)


async def _quiet_close(peer: Peer) -> None:
    with contextlib.suppress(Exception):
        await peer.close()


class Wire:
    """Serves routers over the transport this test run is parametrised with."""

    def __init__(self, transport: str, stack: contextlib.AsyncExitStack) -> None:
        self.transport = transport
        self.stack = stack

    async def serve(self, router: Router[Any], **options: Any) -> Endpoint:
        endpoint = Endpoint(self.transport, router, self.stack, **options)
        await endpoint.start()
        return endpoint
