"""The browser client, ``wskit.js`` (and its types, ``wskit.d.ts``), shipped in the package.

Every host answers ``GET /wskit.js`` with :data:`WSKIT_JS`, read once at import: a bounded,
precomputed answer, whatever the number of requests.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import Final

__all__ = ["WSKIT_JS", "WSKIT_JS_HEADERS", "WSKIT_JS_PATH", "WSKIT_JS_TYPE"]

#: The URL path every host serves the browser client at.
WSKIT_JS_PATH: Final = "/wskit.js"
#: Its content type.
WSKIT_JS_TYPE: Final = "text/javascript; charset=utf-8"
#: The module's bytes.
WSKIT_JS: Final = files(__name__).joinpath("wskit.js").read_bytes()
#: Headers besides the content type: cacheable for an hour, revalidated by its ETag.
WSKIT_JS_HEADERS: Final = {
    "Cache-Control": "public, max-age=3600",
    "ETag": f'"{hashlib.sha256(WSKIT_JS).hexdigest()[:16]}"',
}
