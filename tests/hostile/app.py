"""The server process of the hostile tests: ``python -m tests.hostile.app PORT``.

The production tests' app (ECHO and SLEEP RPCs, SAY events) served by ``serve()`` with its
defaults, in a process of its own so that its CPU, memory and log are the server's alone.
"""

from __future__ import annotations

import sys

from tests.production.conftest import build_router

from wskit import serve


def main() -> None:
    serve(build_router(), host="127.0.0.1", port=int(sys.argv[1]))


if __name__ == "__main__":
    main()
