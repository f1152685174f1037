"""``TestClient``: drive a router in memory from pytest, through the real pipeline.

    async with TestClient(router, data={"user_id": "u1"}) as client:
        await client.send(Join, {"room": "lobby"})
        user = await client.request(GetUser, {"id": "1"})
        assert user.payload.name == "Ada"
        msg = await client.receive()

Frames cross as bytes through the same decoder, dispatcher and encoders as over a socket;
only the socket is missing. ``authenticate=`` runs your upgrade hook as ``serve()`` does:

    client = TestClient(router, authenticate=auth, request=HandshakeRequest(
        path="/", headers={"Authorization": "Bearer t"}))
    assert not await client.connect()   # refused: client.refusal.status == 401
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import json
import uuid
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import TypeAdapter

from wskit.admission import Admission, Authenticate, Refusal
from wskit.errors import UsageError, WsKitError, WsKitException
from wskit.protocol import CANCEL_TYPE, ERROR_TYPE, PROGRESS_TYPE, RPC_ERROR_TYPE, dumps
from wskit.router import Router
from wskit.runtime import Runtime
from wskit.schema.declarations import MessageSchema, RpcSchema
from wskit.schema.validator import payload_json
from wskit.transports.base import HandshakeRequest
from wskit.transports.memory import Closed, MemoryTransport

__all__ = ["ConnectionClosed", "Message", "RpcError", "TestClient"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message(Generic[T]):
    """A frame the client received: ``type``, ``meta`` and ``payload`` (``raw``: its JSON)."""

    type: str
    meta: dict[str, Any]
    payload: T
    raw: bytes = field(repr=False, default=b"")


class RpcError(WsKitError):
    """The server answered a request with ``RPC_ERROR`` (``code``, ``message``, ``details``)."""

    def __init__(self, payload: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> None:
        super().__init__(
            str(payload.get("code", "INTERNAL")),
            payload.get("message"),
            details=payload.get("details"),
            retryable=payload.get("retryable"),
            **({"retry_after_ms": payload["retryAfterMs"]} if "retryAfterMs" in payload else {}),
        )
        self.payload = dict(payload)
        self.meta = dict(meta or {})


class ConnectionClosed(WsKitException, ConnectionError):
    """The server closed the connection (``code``, ``reason``)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason


def _parse(raw: bytes) -> Message[Any]:
    obj = json.loads(raw)
    return Message(obj["type"], obj.get("meta", {}), obj.get("payload"), raw)


@functools.lru_cache(maxsize=256)
def _adapter(model: Any) -> TypeAdapter[Any]:
    """One TypeAdapter per response class (building one costs far more than validating)."""
    return TypeAdapter(model)


def _with_ci_headers(request: HandshakeRequest) -> HandshakeRequest:
    """``request`` with case-insensitive headers, as every real transport gives them."""
    if isinstance(request.headers, (CIMultiDict, CIMultiDictProxy)):
        return request
    return dataclasses.replace(request, headers=CIMultiDict(request.headers))


class TestClient:
    """An in-memory client of ``router`` (no sockets).

    ``data`` becomes the connection's data, as if ``authenticate`` had returned it. Or pass
    ``authenticate`` (sync or async, as for ``serve()``) to test the hook itself: it runs on
    ``connect()`` against ``request`` (default: ``/`` with no headers; its headers are made
    case-insensitive), and what it returns becomes the data. None, a non-mapping or an
    exception refuses the connection as ``serve()`` would (401, 500, 500): ``connect()``
    returns False and :attr:`refusal` holds the HTTP status and body.
    Use ``async with``; ``receive()`` returns the next frame not consumed by ``request()``.
    Raises :class:`UsageError` when both ``data`` and ``authenticate`` are given.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        router: Router[Any],
        *,
        data: Mapping[str, Any] | None = None,
        authenticate: Authenticate | None = None,
        request: HandshakeRequest | None = None,
        client_id: str | None = None,
        max_payload_bytes: int = 1024 * 1024,
    ) -> None:
        if data is not None and authenticate is not None:
            raise UsageError("TestClient: pass data= or authenticate=, not both (authenticate's result is the data)")
        self.router = router
        #: the runtime serving ``router``: the one already attached (a server's, or another
        #: TestClient's, so clients of one router reach each other), else a new in-memory one
        self.runtime = router.runtime if router.served else Runtime(router)
        router.attach(self.runtime)
        self.client_id = client_id or str(uuid.uuid4())
        self.handshake = _with_ci_headers(request or HandshakeRequest(path="/", headers={}))
        self.transport = MemoryTransport(
            self.runtime,
            client_id=self.client_id,
            data=data,
            request=self.handshake,
            max_payload_bytes=max_payload_bytes,
        )
        self._authenticate = authenticate
        self._pending: deque[Message[Any]] = deque()
        self._ids = itertools.count(1)
        self.closed: Closed | None = None
        #: why ``authenticate`` refused the upgrade (HTTP status and body); None when admitted
        self.refusal: Refusal | None = None

    async def __aenter__(self) -> TestClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> bool:
        """Run ``authenticate`` (if given), then open the connection (runs ``on_open``).

        False when ``authenticate`` or ``on_open`` refused it.
        """
        if self._authenticate is not None:
            admitted = await Admission(authenticate=self._authenticate).admit(self.handshake)
            if isinstance(admitted, Refusal):
                self.refusal = admitted
                return False
            self.transport.connection.data = dict(admitted)
        return await self.transport.open()

    @property
    def connection(self) -> Any:
        """The server-side :class:`~wskit.connection.Connection` (for assertions)."""
        return self.transport.connection

    async def send_raw(self, data: bytes | str) -> None:
        """Send one frame exactly as given (for malformed-input tests)."""
        self._check_admitted()
        self.transport.send(data)
        await asyncio.sleep(0)

    async def send(
        self, schema: MessageSchema[Any], payload: Any = None, *, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Send a message of ``schema`` (payload: a model instance, or a dict that may hold some)."""
        frame = b'{"type":' + dumps(schema.type) + b',"meta":' + dumps(dict(meta or {}))
        if payload is not None:
            frame += b',"payload":' + payload_json(payload)
        await self.send_raw(frame + b"}")

    async def request(
        self,
        rpc: RpcSchema[Any, T],
        payload: Any = None,
        *,
        timeout: float = 5.0,
        meta: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> Message[T]:
        """Call an RPC and return its response (payload validated into the response model).

        Progress frames are collected in the returned message's meta under ``"progress"``.
        Raises :class:`RpcError` for ``RPC_ERROR``, ``TimeoutError`` after ``timeout`` seconds.
        """
        cid = correlation_id or f"test-{next(self._ids)}"
        await self.send(rpc.request, payload, meta={**dict(meta or {}), "correlationId": cid})
        progress: list[Any] = []
        async with asyncio.timeout(timeout):
            while True:
                msg = await self._next_frame()
                if msg.meta.get("correlationId") != cid:
                    self._pending.append(msg)
                    continue
                if msg.type == PROGRESS_TYPE:
                    progress.append(msg.payload)
                    continue
                if msg.type in (RPC_ERROR_TYPE, ERROR_TYPE):
                    raise RpcError(msg.payload or {}, msg.meta)
                typed = self._typed(rpc.response, msg.payload)
                return Message(msg.type, {**msg.meta, "progress": progress}, typed, msg.raw)

    async def cancel(self, correlation_id: str) -> None:
        """Send ``$ws:rpc-cancel`` for a request in flight."""
        await self.send_raw(json.dumps({"type": CANCEL_TYPE, "meta": {"correlationId": correlation_id}}))

    def _typed(self, schema: MessageSchema[T], payload: Any) -> T:
        model = schema.payload_model
        if model is None or payload is None:
            return payload  # type: ignore[no-any-return]
        if hasattr(model, "__struct_fields__"):
            import msgspec  # a Struct was declared, so msgspec is installed

            return msgspec.convert(payload, model)
        # pydantic models, dataclasses and TypedDicts: pydantic is a core dependency
        adapter: TypeAdapter[T] = _adapter(cast(Hashable, model))
        return adapter.validate_python(payload)

    async def receive(self, timeout: float = 2.0) -> Message[Any]:
        """The next frame from the server. Raises :class:`ConnectionClosed` once closed."""
        if self._pending:
            return self._pending.popleft()
        async with asyncio.timeout(timeout):
            return await self._next_frame()

    async def receive_pending(self) -> Message[Any] | None:
        """The next frame if one is already there, else None (yields once so queued work runs)."""
        await asyncio.sleep(0)
        if self._pending:
            return self._pending.popleft()
        if self.transport.inbox.empty():
            return None
        return await self._next_frame()

    def _check_admitted(self) -> None:
        if self.refusal is not None:
            raise ConnectionError(f"upgrade refused: {self.refusal.status} {self.refusal.text}")

    async def _next_frame(self) -> Message[Any]:
        self._check_admitted()
        if self.closed is not None:
            raise ConnectionClosed(self.closed.code, self.closed.reason)
        item = await self.transport.inbox.get()
        if isinstance(item, Closed):
            self.closed = item
            raise ConnectionClosed(item.code, item.reason)
        return _parse(item)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client side and wait until the server has run ``on_close``."""
        self.transport.shut(code, reason)
        await self.transport.wait_closed()
