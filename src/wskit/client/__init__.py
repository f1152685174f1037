"""The asyncio client of wskit (API.md, "Clients"): typed, reconnecting, losing nothing it can keep.

    from wskit.client import Client, ClientError

    async with Client("ws://127.0.0.1:8000/", token=get_token) as client:
        user = await client.request(GetUser, {"id": "1"})

See ``docs/client.md``. Transport: aiohttp's client (a core dependency).
"""

from __future__ import annotations

from wskit.client.auth import TokenPlace
from wskit.client.backoff import Backoff
from wskit.client.client import Client
from wskit.client.codec import Message
from wskit.client.connection import Heartbeat
from wskit.client.errors import BadFrame, ClientError, ClientStopped
from wskit.client.offline import Dropped, OfflineLimits, OfflinePolicy
from wskit.client.state import State, StateChange
from wskit.client.subscriptions import Subscription

__all__ = [
    "Backoff",
    "BadFrame",
    "Client",
    "ClientError",
    "ClientStopped",
    "Dropped",
    "Heartbeat",
    "Message",
    "OfflineLimits",
    "OfflinePolicy",
    "State",
    "StateChange",
    "Subscription",
    "TokenPlace",
]
