"""Testing helpers: an in-memory client, and conformance suites for third-party parts."""

from __future__ import annotations

from wskit.testing.client import ConnectionClosed, Message, RpcError, TestClient

__all__ = ["ConnectionClosed", "Message", "RpcError", "TestClient"]
