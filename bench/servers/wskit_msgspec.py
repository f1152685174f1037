"""wskit with msgspec Structs (the fast path), serve() on uvloop."""

from __future__ import annotations

import msgspec
from _wskit_app import run


class Text(msgspec.Struct):
    text: str


class Topic(msgspec.Struct):
    topic: str


class Tick(msgspec.Struct):
    topic: str
    seq: int
    t: int


if __name__ == "__main__":
    run(Text, Topic, Tick)
