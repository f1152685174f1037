"""A RedisBroker built before a fork names each worker process as its own instance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import wskit.pubsub.redis as module
from wskit.pubsub.redis import RedisBroker
from wskit.testing.brokers import RecordingListener


async def test_instance_id_is_renewed_in_a_forked_worker(
    redis_server: Callable[..., Any], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve(workers=N, broker=RedisBroker(...)) forks one unstarted broker: each worker must get
    its own instance id, or one worker's clean exit would erase the others' presence."""
    server = redis_server()
    broker = RedisBroker(server.url, namespace=namespace)
    parent_id = broker.instance_id
    monkeypatch.setattr(module.os, "getpid", lambda: 4242)  # as seen from a forked child
    await broker.start(RecordingListener())
    try:
        assert broker.instance_id != parent_id
        assert ":4242:" in broker.instance_id
    finally:
        await broker.close()


async def test_an_explicit_instance_id_is_kept(
    redis_server: Callable[..., Any], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance id given by the application is never replaced."""
    server = redis_server()
    broker = RedisBroker(server.url, namespace=namespace, instance_id="api-1")
    monkeypatch.setattr(module.os, "getpid", lambda: 4242)
    await broker.start(RecordingListener())
    try:
        assert broker.instance_id == "api-1"
    finally:
        await broker.close()
