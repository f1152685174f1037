"""The hostile suite: attacks a tester made from outside, replayed with bounds.

Each module here replays one class of attack over real sockets (a server process where the
bound is about the whole process: memory, log lines) and asserts a bound that fails on the
code that let the attack through: memory per closed connection, answer size, side-client
latency, log lines per bad request.
"""

from __future__ import annotations

# shared with the production-guard tests: a tiny app, the server factories (every host, and
# serve()'s own for what is the aiohttp host's: frames, pings), raw HTTP helpers
from tests.production.conftest import make_server, make_standalone  # noqa: F401
