"""``python -m examples.chat`` (``make run``): the chat demo on http://127.0.0.1:8000.

The page and the WebSocket share the port: plain GETs of ``/`` and ``/chat.js`` get the
files, upgrades on ``/`` reach the router. ``HOST`` and ``PORT`` override the defaults
(``PORT=9000 make run``).
"""

from __future__ import annotations

from pathlib import Path

import wskit
from examples.chat.app import ChatLimits, create_router
from wskit.config import load_settings

HERE = Path(__file__).resolve().parent

#: URL path -> file served for plain HTTP GETs.
STATIC_FILES: dict[str, Path] = {
    "/": HERE / "index.html",
    "/index.html": HERE / "index.html",
    "/chat.js": HERE / "chat.js",
}


def main() -> None:
    """Serve the chat until Ctrl-C (host and port from HOST/PORT, else 127.0.0.1:8000)."""
    settings = load_settings()
    if settings.port:
        print(f"wskit chat demo: open http://{settings.host}:{settings.port}/ (Ctrl-C stops)", flush=True)
    # room topics keep history: a page that reconnects rejoins from its last position
    wskit.serve(create_router(ChatLimits(recoverable=True)), static_files=STATIC_FILES)


if __name__ == "__main__":
    main()
