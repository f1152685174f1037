"""wskit as a user writes it (pydantic models, handlers that pass dicts, a topic joined on
open, serve()'s default settings) on the picows transport (``WSKIT_TRANSPORT=picows``)."""

from __future__ import annotations

from _wskit_app import run
from wskit_pydantic import Text, Tick, Topic

if __name__ == "__main__":
    run(Text, Topic, Tick, style="default", transport="picows")
