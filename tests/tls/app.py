"""The server the wss:// tests run as a process of its own, configured by the environment alone.

    python -m tests.tls.app                                    # serve(): PORT, TLS_CERT_FILE, WSKIT_TRANSPORT...
    python -m uvicorn tests.tls.app:make_asgi --factory ...    # asgi_app() under uvicorn's own TLS

The router is the production tests' (``ECHO``, and ``SAY`` answered by ``HEARD`` to every
speaker), so the tests here only change how it is served.
"""

from __future__ import annotations

from tests.production.conftest import build_router

from wskit import serve
from wskit.asgi import AsgiApp, asgi_app

__all__ = ["main", "make_asgi"]


def make_asgi() -> AsgiApp:
    """The ASGI app for uvicorn's ``--factory``."""
    return asgi_app(build_router())


def main() -> None:
    serve(build_router())


if __name__ == "__main__":
    main()
