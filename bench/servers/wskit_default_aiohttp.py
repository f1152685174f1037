"""wskit as a user writes it (pydantic models, handlers that pass dicts, a topic joined on
open, serve()'s default settings) with the base install, ``pip install wskit``: without
picows, serve() hosts on aiohttp (``WSKIT_TRANSPORT=aiohttp`` forces it here)."""

from __future__ import annotations

from _wskit_app import run
from wskit_pydantic import Text, Tick, Topic

if __name__ == "__main__":
    run(Text, Topic, Tick, style="default", transport="aiohttp")
