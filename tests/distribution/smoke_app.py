"""The app a stranger writes first, served from an installed wheel (tests/distribution).

``python smoke_app.py`` serves :data:`router` with ``serve()``, which takes ``HOST`` and
``PORT`` from the environment as a deployment would (``PORT=0``: a free port, named in the
``wskit listening on ...`` log line). It runs in a fresh virtualenv that holds the wheel and
its base dependencies only, so it may import nothing from the checkout or the test suite.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from wskit import Context, Router, rpc, serve


class Name(BaseModel):
    name: str = Field(min_length=1, max_length=32)


class Greeting(BaseModel):
    text: str


Greet = rpc("GREET", Name, "GREETING", Greeting)
router = Router()


@router.rpc(Greet)
async def greet(ctx: Context[Name]) -> None:
    await ctx.reply({"text": f"Hello, {ctx.payload.name}!"})


if __name__ == "__main__":
    serve(router)
