"""A socket for hub-level broker tests: records frames, and can stall like a slow client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["RecordingSocket"]


class RecordingSocket:
    """A :class:`~wskit.transports.base.Socket` that keeps every frame it is given.

    After :meth:`stall` the next frame is taken but "the transport wants us to wait": the
    connection queues what follows in its backlog, as it does for a client that reads slowly.
    """

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self._stall = False
        self._pending: asyncio.Future[None] | None = None

    def send_frame(self, data: bytes) -> asyncio.Future[None] | None:
        if self.closed is not None:
            raise ConnectionError("closed")
        self.frames.append(data)
        if self._stall:
            self._stall = False
            self._pending = asyncio.get_running_loop().create_future()
            return self._pending
        return None

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(None)

    def stall(self) -> None:
        self._stall = True

    def messages(self) -> list[dict[str, Any]]:
        """The frames, decoded."""
        return [json.loads(f) for f in self.frames]
