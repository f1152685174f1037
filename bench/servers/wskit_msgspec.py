"""wskit with msgspec Structs, the bench's tuned path (payload instances passed back, guards off),
serve() on uvloop; ``wskit_default_msgspec.py`` is the same Structs as a user writes them."""

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
