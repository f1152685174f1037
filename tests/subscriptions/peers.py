"""One client of a served router for the subscription tests, in memory or over a real socket.

``await peer.send({...})`` sends a frame as JSON, ``await peer.recv()`` returns the next frame
as a dict and ``peer.raw`` the bytes of the last one (to check what a WS-Kit client sees).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection

from wskit.testing import TestClient

__all__ = ["MemoryPeer", "Peer", "SocketPeer", "subscribe_frame"]

#: how long a test waits for one frame
FRAME_TIMEOUT_S = 5.0


class Peer(Protocol):
    raw: bytes

    async def send(self, frame: dict[str, Any] | str) -> None: ...
    async def recv(self) -> dict[str, Any]: ...


class MemoryPeer:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.raw = b""

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.client.send_raw(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        msg = await self.client.receive(timeout=FRAME_TIMEOUT_S)
        self.raw = msg.raw
        return dict(json.loads(msg.raw))


class SocketPeer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.raw = b""

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        import asyncio

        async with asyncio.timeout(FRAME_TIMEOUT_S):
            data = await self.ws.recv()
        self.raw = data.encode() if isinstance(data, str) else data
        return dict(json.loads(self.raw))


def subscribe_frame(cid: str, topic: str, **position: Any) -> dict[str, Any]:
    """``$ws:subscribe`` for ``topic`` (``offset=``/``epoch=`` to recover)."""
    return {"type": "$ws:subscribe", "meta": {"correlationId": cid}, "payload": {"topic": topic, **position}}
