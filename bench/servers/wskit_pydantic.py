"""wskit with pydantic models, the bench's tuned path (payload instances passed back, guards off),
serve() on uvloop; ``wskit_default.py`` is the same models as a user writes them."""

from __future__ import annotations

from _wskit_app import run
from pydantic import BaseModel


class Text(BaseModel):
    text: str


class Topic(BaseModel):
    topic: str


class Tick(BaseModel):
    topic: str
    seq: int
    t: int


if __name__ == "__main__":
    run(Text, Topic, Tick)
