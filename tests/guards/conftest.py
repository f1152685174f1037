"""Fixtures of the guard tests: one throwaway Redis for the module, JWT keys and tokens."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from tests.support.redis_server import RedisServer, redis_or_skip

#: HMAC secrets of the tests (32 bytes: the minimum for HS256).
SECRET = "s" * 32
OTHER_SECRET = "o" * 32


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis of our own (or ``REDIS_URL``, shared: tests then only touch their own keys)."""
    found = redis_or_skip()
    if isinstance(found, RedisServer):
        try:
            yield found.url
        finally:
            found.stop()
    else:
        yield found


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"wskit-test-{uuid.uuid4().hex[:8]}"


def make_token(
    claims: dict[str, Any] | None = None,
    *,
    key: str = SECRET,
    algorithm: str = "HS256",
    ttl_s: float | None = 3600,
    sub: str | None = "u1",
) -> str:
    """A signed token: ``sub`` and ``exp`` (now + ``ttl_s``) unless overridden or None.

    Parametrised tests build theirs at collection, minutes before they run in a full suite:
    times are an hour away, never minutes."""
    body: dict[str, Any] = {}
    if sub is not None:
        body["sub"] = sub
    if ttl_s is not None:
        body["exp"] = int(time.time() + ttl_s)
    body.update(claims or {})
    return jwt.encode(body, key, algorithm=algorithm)


@pytest.fixture
def token() -> Callable[..., str]:
    """:func:`make_token` as a fixture."""
    return make_token
