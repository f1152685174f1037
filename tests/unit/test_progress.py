"""``ctx.progress`` takes the same kinds of payload as replies: models, Structs, dataclasses, dicts."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel

from wskit import Context, Router, rpc
from wskit.testing import TestClient


class Stage(BaseModel):
    stage: str


class StageStruct(msgspec.Struct):
    stage: str


@dataclasses.dataclass
class StageData:
    stage: str


class Empty(BaseModel):
    pass


Work = rpc("WORK", Empty, "DONE", Empty)


@pytest.mark.parametrize(
    "progress",
    [Stage(stage="loading"), StageStruct("loading"), StageData("loading"), {"stage": "loading"}],
    ids=["pydantic", "msgspec", "dataclass", "dict"],
)
async def test_progress_accepts_any_payload_kind(progress: Any) -> None:
    """Each kind arrives as the same JSON object before the reply."""
    router: Router[Any] = Router()

    @router.rpc(Work)
    async def work(ctx: Context[Empty]) -> None:
        await ctx.progress(progress)
        await ctx.reply({})

    async with TestClient(router) as client:
        done = await client.request(Work, {})
    assert done.meta["progress"] == [{"stage": "loading"}]
