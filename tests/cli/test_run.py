"""``wskit run``: settings flags against their environment variables, checked by behaviour.

A frame over ``MAX_PAYLOAD_BYTES`` closes the connection with 1009, which ``wskit send``
reports; which limit the server applies shows whether the flag or the variable won.
"""

from __future__ import annotations

import json
import re
import time

import jwt
import pytest
from tests.cli.conftest import APP, Running, one_error_line, wskit

#: a POST of about 5 kB: over a 1,000-byte limit, under a 100,000-byte one
BIG = json.dumps({"topic": "feed:big", "text": "x" * 5000})


@pytest.mark.parametrize(
    ("flag", "env", "refused"),
    [
        (None, "1000", True),  # the variable alone applies
        ("100000", "1000", False),  # the flag wins over the variable (raises the limit)
        ("1000", "100000", True),  # ... and lowers it
        (None, None, False),  # the default (1 MiB)
    ],
)
def test_max_payload_bytes_flag_wins_over_the_variable(flag: str | None, env: str | None, refused: bool) -> None:
    """--max-payload-bytes over MAX_PAYLOAD_BYTES over the default: a frame over the limit in
    force is closed with 1009, one under it is handled."""
    args = ["run", APP, "--port", "0"] + (["--max-payload-bytes", flag] if flag else [])
    with Running(*args, env={"MAX_PAYLOAD_BYTES": env} if env else None) as server:
        done = wskit("send", server.url(), "POST", BIG)
        if refused:
            assert done.returncode == 1
            assert one_error_line(done, "send") == (
                "wskit send: error: the server closed the connection: 1009 (message too big)"
            )
        else:
            assert (done.returncode, done.stderr) == (0, "")
        assert server.stop() == 0


def test_sigterm_stops_gracefully_with_exit_0() -> None:
    """SIGTERM: serve()'s graceful shutdown, then exit 0 (the log says so)."""
    with Running("run", APP, "--port", "0") as server:
        server.url()
        assert server.stop() == 0
        assert any("wskit stopped" in line for line in server.err), server.err


def test_the_host_and_log_level_flags_apply() -> None:
    """Other flags reach serve() too: --host picks the interface of the URL it listens on, and
    --log-format json makes the log JSON lines."""
    with Running("run", APP, "--port", "0", "--host", "127.0.0.1", "--log-format", "json") as server:
        url = server.url()
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/", url)
        first = json.loads(next(line for line in server.err if "listening on" in line))
        assert first["logger"] == "wskit.server"
        assert server.stop() == 0


def test_workers_without_redis_is_a_usage_error() -> None:
    """--workers 2 without REDIS_URL: serve()'s refusal as one line, exit 2."""
    done = wskit("run", APP, "--port", "0", "--workers", "2")
    assert done.returncode == 2
    assert one_error_line(done, "run").startswith("wskit run: error: workers=2 needs a broker shared by the processes")


def test_port_in_use_is_one_line(server: str) -> None:
    """A port another server holds: one line naming it, exit 1."""
    port = server.rsplit(":", 1)[1].strip("/")
    done = wskit("run", APP, "--port", port)
    assert done.returncode == 1
    line = one_error_line(done, "run")
    assert line.startswith(f"wskit run: error: cannot listen on 127.0.0.1:{port}: "), line


def test_token_travels_and_a_refused_one_is_one_line() -> None:
    """With JWT_SECRET, --token (or WSKIT_TOKEN) authenticates the remote commands' connection;
    a token the server refuses is the upgrade's 401 as one line, exit 1."""
    secret = "s" * 40
    token = jwt.encode({"sub": "ada", "exp": int(time.time()) + 300}, secret, algorithm="HS256")
    with Running("run", APP, "--port", "0", env={"JWT_SECRET": secret}) as server:
        url = server.url()
        done = wskit("request", url, "WHOAMI", "--token", token)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["payload"] == {"user_id": "ada"}
        from_env = wskit("request", url, "WHOAMI", env={"WSKIT_TOKEN": token})
        assert json.loads(from_env.stdout)["payload"] == {"user_id": "ada"}
        anonymous = wskit("request", url, "WHOAMI")
        assert json.loads(anonymous.stdout)["payload"] == {"user_id": None}
        refused = wskit("request", url, "WHOAMI", "--token", token + "x")
        assert refused.returncode == 1
        line = one_error_line(refused, "request")
        assert line.startswith(f"wskit request: error: cannot connect to {url}: upgrade refused: HTTP 401"), line
        assert line.endswith("(the token was refused)"), line
        assert server.stop() == 0
