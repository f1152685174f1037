"""The runtime a served router becomes: serving never changes the router, and one router is
served by one running runtime at a time."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from wskit import Context, Router, Server, UsageError, message
from wskit.runtime import build_runtime


class Text(BaseModel):
    text: str


Say = message("SAY", Text)


def _router() -> Router[Any]:
    router: Router[Any] = Router()

    @router.on(Say)
    async def say(ctx: Context[Text]) -> None:
        await ctx.send(Say, ctx.payload)

    return router


async def test_a_router_served_twice_at_once_fails_at_start_with_a_clear_message() -> None:
    """A second Server of a router that a running Server serves: UsageError at start, naming
    the way out; after the first stops, the router can be served again."""
    router = _router()
    first = Server(router, port=0, env={})
    await first.start()
    try:
        second = Server(router, port=0, env={})
        with pytest.raises(UsageError, match="already served"):
            await second.start()
    finally:
        await first.stop()
    again = Server(router, port=0, env={})
    await again.start()
    await again.stop()


async def test_serving_with_jwt_leaves_the_router_as_declared() -> None:
    """JWT_SECRET adds an AUTH route to what is served, not to the application's router."""
    router = _router()
    runtime = build_runtime(router, env={}, jwt_secret="s" * 40, auth_timeout_ms=1000, allowed_origins="*")
    assert "AUTH" in runtime.routes.routes
    assert set(router.routes) == {"SAY"}
    assert runtime.router is router and runtime.routes is not router


def test_publishing_before_any_runtime_serves_the_router_says_so() -> None:
    """router.runtime before serve()/Server/asgi_app/TestClient: a UsageError saying what to start."""
    with pytest.raises(UsageError, match="not served yet"):
        _ = _router().runtime
