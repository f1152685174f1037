"""wskit as a user writes it, with msgspec Structs: handlers that pass dicts, a topic joined on
open, serve() with its default settings."""

from __future__ import annotations

from _wskit_app import run
from wskit_msgspec import Text, Tick, Topic

if __name__ == "__main__":
    run(Text, Topic, Tick, style="default")
