"""Transports: adapters between a runtime's sockets and the core (aiohttp, in-memory)."""

from __future__ import annotations

from wskit.transports.base import HandshakeRequest, Socket

__all__ = ["HandshakeRequest", "Socket"]
